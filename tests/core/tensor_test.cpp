// The half/bfloat16 converters, checked against an independent oracle: the value a half encodes
// is computed with ldexp from its fields, and rounding is checked at the exact midpoints between
// neighbouring representable values, where round-to-nearest-even decides.
#include "core/tensor.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

namespace ds {
namespace {

float BitsToFloat(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

bool HalfIsNan(uint16_t h) { return (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu) != 0; }
bool BF16IsNan(uint16_t b) { return (b & 0x7f80u) == 0x7f80u && (b & 0x7fu) != 0; }

double HalfOracle(uint16_t h) {
  int exp = (h >> 10) & 0x1f;
  int mant = h & 0x3ff;
  double sign = (h & 0x8000u) ? -1.0 : 1.0;
  if (exp == 0x1f) return sign * std::numeric_limits<double>::infinity();
  if (exp == 0) return sign * std::ldexp(mant, -24);
  return sign * std::ldexp(1024 + mant, exp - 25);
}

TEST(HalfTest, DecodesEveryValue) {
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    float f = HalfToFloat(static_cast<uint16_t>(h));
    if (HalfIsNan(static_cast<uint16_t>(h))) {
      EXPECT_TRUE(std::isnan(f)) << std::hex << h;
      continue;
    }
    ASSERT_EQ(static_cast<double>(f), HalfOracle(static_cast<uint16_t>(h))) << std::hex << h;
    ASSERT_EQ(std::signbit(f), (h & 0x8000u) != 0) << std::hex << h;
  }
}

TEST(HalfTest, RoundTripsEveryNonNanValue) {
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    auto bits = static_cast<uint16_t>(h);
    uint16_t back = FloatToHalf(HalfToFloat(bits));
    if (HalfIsNan(bits)) {
      EXPECT_TRUE(HalfIsNan(back)) << std::hex << h;  // payloads need not survive
    } else {
      ASSERT_EQ(back, bits) << std::hex << h;
    }
  }
}

// For each pair of adjacent positive halves (the last pair is 65504 and +inf), the exact midpoint
// rounds to the even one and the floats just beside it round to the nearer one.
TEST(HalfTest, RoundsToNearestEvenAtEveryMidpoint) {
  for (uint16_t lo = 0; lo < 0x7c00; ++lo) {
    const uint16_t hi = static_cast<uint16_t>(lo + 1);
    // Rounding treats infinity as the next step, 2^16, after 65504.
    const double hi_value = hi == 0x7c00 ? 65536.0 : HalfOracle(hi);
    const float mid = static_cast<float>((HalfOracle(lo) + hi_value) / 2);  // exact in float
    const uint16_t even = (lo & 1u) ? hi : lo;
    ASSERT_EQ(FloatToHalf(mid), even) << "midpoint above 0x" << std::hex << lo;
    ASSERT_EQ(FloatToHalf(std::nextafter(mid, 0.0f)), lo) << std::hex << lo;
    ASSERT_EQ(FloatToHalf(std::nextafter(mid, 1e9f)), hi) << std::hex << lo;
    ASSERT_EQ(FloatToHalf(-mid), even | 0x8000u) << std::hex << lo;
  }
}

TEST(HalfTest, KnownConversions) {
  EXPECT_EQ(FloatToHalf(1.0f), 0x3C00);
  EXPECT_EQ(FloatToHalf(-2.0f), 0xC000);
  EXPECT_EQ(FloatToHalf(0.1f), 0x2E66);  // 0.0999755859375, the nearer neighbour
  EXPECT_EQ(FloatToHalf(1.0f / 3.0f), 0x3555);
  EXPECT_EQ(FloatToHalf(65504.0f), 0x7BFF);
  EXPECT_EQ(FloatToHalf(65519.99f), 0x7BFF);
  EXPECT_EQ(FloatToHalf(65520.0f), 0x7C00);  // the tie with 65536 goes to even, i.e. infinity
  EXPECT_EQ(FloatToHalf(1e10f), 0x7C00);
  EXPECT_EQ(FloatToHalf(-std::numeric_limits<float>::infinity()), 0xFC00);
  EXPECT_EQ(FloatToHalf(-0.0f), 0x8000);
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -25)), 0x0000);  // tie between 0 and 2^-24: even
  EXPECT_EQ(FloatToHalf(std::ldexp(2.5f, -24)), 0x0002);  // subnormal tie: even
  EXPECT_EQ(FloatToHalf(std::ldexp(3.5f, -24)), 0x0004);
  EXPECT_EQ(FloatToHalf(std::numeric_limits<float>::denorm_min()), 0x0000);
  EXPECT_TRUE(HalfIsNan(FloatToHalf(std::numeric_limits<float>::quiet_NaN())));
}

TEST(BFloat16Test, DecodesAndRoundTripsEveryValue) {
  for (uint32_t b = 0; b <= 0xffff; ++b) {
    auto bits = static_cast<uint16_t>(b);
    float f = BFloat16ToFloat(bits);
    uint32_t fbits;
    std::memcpy(&fbits, &f, 4);
    ASSERT_EQ(fbits, b << 16) << std::hex << b;  // bf16 is the top half of a float
    uint16_t back = FloatToBFloat16(f);
    if (BF16IsNan(bits)) {
      EXPECT_TRUE(BF16IsNan(back)) << std::hex << b;
    } else {
      ASSERT_EQ(back, bits) << std::hex << b;
    }
  }
}

TEST(BFloat16Test, RoundsToNearestEvenAtEveryMidpoint) {
  for (uint32_t lo = 0; lo < 0x7f80; ++lo) {
    const uint32_t hi = lo + 1;
    const float mid = BitsToFloat(lo << 16 | 0x8000u);  // exactly halfway in bit space and value
    const uint16_t even = static_cast<uint16_t>((lo & 1u) ? hi : lo);
    ASSERT_EQ(FloatToBFloat16(mid), even) << std::hex << lo;
    ASSERT_EQ(FloatToBFloat16(BitsToFloat(lo << 16 | 0x7fffu)), lo) << std::hex << lo;
    ASSERT_EQ(FloatToBFloat16(BitsToFloat(lo << 16 | 0x8001u)), hi) << std::hex << lo;
  }
}

TEST(BFloat16Test, KnownConversions) {
  EXPECT_EQ(FloatToBFloat16(1.0f), 0x3F80);
  EXPECT_EQ(FloatToBFloat16(-3.0f), 0xC040);
  EXPECT_EQ(FloatToBFloat16(3.14159265f), 0x4049);
  EXPECT_EQ(FloatToBFloat16(std::numeric_limits<float>::max()), 0x7F80);  // rounds up to inf
  EXPECT_TRUE(BF16IsNan(FloatToBFloat16(std::numeric_limits<float>::quiet_NaN())));
  // A signalling-NaN pattern whose payload sits only in the low 16 bits must stay a NaN.
  EXPECT_TRUE(BF16IsNan(FloatToBFloat16(BitsToFloat(0x7f800001u))));
}

// The bytes a view touches, first element to one past the last: what the CUDA backend stages from
// host views and what the attention tuner checks for an output over an input.
TEST(TensorSpanTest, CoversFirstToLastElement) {
  float buf[64] = {};
  EXPECT_EQ(SpanBytes(Tensor::View(buf, DType::kF32, {4, 8})), 4u * 8u * 4u);
  // Every other row of a [4, 8] matrix as a [2, 8] view: rows 0 and 2 (row 1 between them
  // included), not row 3.
  Tensor rows = Tensor::View(buf, DType::kF32, {2, 8});
  rows.strides[0] = 2 * 8 * 4;
  EXPECT_EQ(SpanBytes(rows), (2u * 8u + 8u) * 4u);
  // Columns 2..5 of each row: from element 2 of row 0 to element 5 of row 3.
  Tensor cols = Tensor::View(buf + 2, DType::kBF16, {4, 4});
  cols.strides[0] = 16;
  EXPECT_EQ(SpanBytes(cols), 3u * 16u + 4u * 2u);
  EXPECT_EQ(SpanBytes(SplitHeads(Tensor::View(buf, DType::kF32, {2, 32}), 4)), 2u * 32u * 4u);
  EXPECT_EQ(SpanBytes(Tensor::View(buf, DType::kF32, {0, 8})), 0u);
}

}  // namespace
}  // namespace ds
