// gen_avoptions: prints the AVOption entries of the native `ditstream` libavfilter source, made from the
// engine's option table, as C (vsrc_ditstream_options.h). FFmpeg needs its option table as static C
// data, so it is generated at build time instead of being kept in step with the table by hand.
//
// Mapping: names '-' → '_'; width+height → one image size option `size`/`s` (unset = native size);
// fps → rational `rate`/`r` (0 = native rate); options that may change between clips get the runtime
// flag (TFLAGS), so `sendcmd` can change them. vsrc_ditstream.c defines OFFSET, FLAGS and TFLAGS, and
// a context field named after each option.
#include <cstdio>
#include <string>
#include <string_view>

#include "ditstream.h"

namespace {

// A C string literal; bytes outside printable ASCII as three-digit octal escapes, which the next
// character can never extend.
std::string Literal(std::string_view text) {
  std::string out = "\"";
  for (const unsigned char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\%03o", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string FieldName(std::string_view name) {
  std::string s(name);
  for (char& c : s) {
    if (c == '-') c = '_';
  }
  return s;
}

std::string Number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

const char* Flags(const ds_option_info& o) { return o.applies_between_clips ? "TFLAGS" : "FLAGS"; }

void PrintEntry(const std::string& name, const std::string& help, const std::string& field, const char* type,
                const std::string& def, const std::string& min, const std::string& max, const char* flags) {
  std::printf("    { %s, %s, OFFSET(%s), %s, { %s }, %s, %s, %s },\n", Literal(name).c_str(), Literal(help).c_str(),
              field.c_str(), type, def.c_str(), min.c_str(), max.c_str(), flags);
}

void PrintSize(const ds_option_info& width) {
  const std::string help = "Frame size WxH (unset = the model's native size)";
  for (const char* name : {"size", "s"}) PrintEntry(name, help, "w", "AV_OPT_TYPE_IMAGE_SIZE", ".str = NULL", "0", "0", Flags(width));
}

void PrintRate(const ds_option_info& fps) {
  const std::string help = "Frame rate (0 = the model's native rate)";
  for (const char* name : {"rate", "r"}) {
    PrintEntry(name, help, "rate", "AV_OPT_TYPE_RATIONAL", ".dbl = " + std::string(fps.default_value), Number(fps.min),
               Number(fps.max), Flags(fps));
  }
}

bool FitsInt(const ds_option_info& o) { return o.min >= -2147483648.0 && o.max <= 2147483647.0; }

void PrintOption(const ds_option_info& o) {
  const std::string name = FieldName(o.name), help = o.help ? o.help : "";
  switch (o.type) {
    case DS_OPT_STRING:
      PrintEntry(name, help, name, "AV_OPT_TYPE_STRING", ".str = " + Literal(o.default_value), "0", "0", Flags(o));
      break;
    case DS_OPT_INT:
      PrintEntry(name, help, name, FitsInt(o) ? "AV_OPT_TYPE_INT" : "AV_OPT_TYPE_INT64",
                 ".i64 = " + std::string(o.default_value), Number(o.min), Number(o.max), Flags(o));
      break;
    case DS_OPT_DOUBLE:
      PrintEntry(name, help, name, "AV_OPT_TYPE_DOUBLE", ".dbl = " + std::string(o.default_value), Number(o.min),
                 Number(o.max), Flags(o));
      break;
  }
}

}  // namespace

int main() {
  std::printf(
      "/* Generated from the ditstream option table (ds_option_at) by gen_avoptions; do not edit.\n"
      " * Included inside the AVOption array of vsrc_ditstream.c. */\n");
  for (int i = 0; i < ds_option_count(); ++i) {
    const ds_option_info& o = *ds_option_at(i);
    const std::string_view name = o.name;
    if (name == "width") {
      PrintSize(o);
    } else if (name == "height") {
      continue;  // part of size
    } else if (name == "fps") {
      PrintRate(o);
    } else if (name == "threads") {
      // libavfilter gives every filter a generic `threads` option and takes that key before the
      // filter's own: the filter reads AVFilterContext::nb_threads instead.
      continue;
    } else {
      PrintOption(o);
    }
  }
  return 0;
}
