#include "frame_copy.h"

#include <cstddef>
#include <cstring>

namespace ditsrc {

void CopyPlane(const uint8_t* src, int src_stride, int row_bytes, int rows, Plane dst) {
  for (int y = 0; y < rows; ++y) {
    std::memcpy(dst.data + static_cast<size_t>(y) * dst.stride, src + static_cast<size_t>(y) * src_stride,
                static_cast<size_t>(row_bytes));
  }
}

}  // namespace ditsrc
