// Constructors of the concrete writers, for writer.cpp's factory.
#pragma once

#include "output_file.h"
#include "writer.h"

namespace ditgen {

std::unique_ptr<FrameWriter> make_y4m_writer(std::unique_ptr<OutputFile> file);
std::unique_ptr<FrameWriter> make_encoded_writer(std::unique_ptr<OutputFile> file);
std::unique_ptr<FrameWriter> make_png_writer(std::unique_ptr<OutputDir> dir);
std::unique_ptr<FrameWriter> make_strip_writer(std::unique_ptr<OutputFile> file);

}  // namespace ditgen
