#include "ditsrc_options.h"

#include <gst/gst.h>

#include <algorithm>
#include <cmath>
#include <string_view>

namespace ditsrc {
namespace {

// Table bounds are doubles; INT64_MAX itself is not representable, so saturate before casting.
gint64 ToInt64(double v) {
  if (v <= static_cast<double>(G_MININT64)) return G_MININT64;
  if (v >= static_cast<double>(G_MAXINT64)) return G_MAXINT64;
  return static_cast<gint64>(std::llround(v));
}

// The options whose 0 means "the model's native value" in the engine: in ditsrc, caps negotiation
// picks them (the model's native value only where downstream leaves them open).
const char* NegotiatedBlurb(std::string_view name) {
  if (name == "width")
    return "Frame width in pixels (0 = negotiated: what downstream's caps allow, the model's native width if they "
           "leave it open)";
  if (name == "height")
    return "Frame height in pixels (0 = negotiated: what downstream's caps allow, the model's native height if they "
           "leave it open)";
  if (name == "fps")
    return "Frame rate (0 = negotiated: what downstream's caps allow, the model's native rate if they leave it open)";
  return nullptr;
}

std::string Blurb(const ds_option_info& o) {
  const char* negotiated = NegotiatedBlurb(o.name);
  std::string blurb = negotiated ? negotiated : o.help ? o.help : "";
  if (o.applies_between_clips) blurb += " (may change while playing; applies from the next clip)";
  return blurb;
}

GParamSpec* IntSpec(const ds_option_info& o, const std::string& blurb, GParamFlags flags) {
  const gint64 lo = ToInt64(o.min), hi = ToInt64(o.max);
  const gint64 def = std::clamp<gint64>(g_ascii_strtoll(o.default_value, nullptr, 10), lo, hi);
  if (lo >= G_MININT && hi <= G_MAXINT) {
    return g_param_spec_int(o.name, o.name, blurb.c_str(), static_cast<gint>(lo), static_cast<gint>(hi),
                            static_cast<gint>(def), flags);
  }
  return g_param_spec_int64(o.name, o.name, blurb.c_str(), lo, hi, def, flags);
}

}  // namespace

GParamSpec* ParamSpecFor(const ds_option_info& o) {
  const auto flags = static_cast<GParamFlags>(
      G_PARAM_READWRITE | (o.applies_between_clips ? GST_PARAM_MUTABLE_PLAYING : GST_PARAM_MUTABLE_READY));
  const std::string blurb = Blurb(o);
  switch (o.type) {
    case DS_OPT_STRING:
      return g_param_spec_string(o.name, o.name, blurb.c_str(), o.default_value, flags);
    case DS_OPT_INT:
      return IntSpec(o, blurb, flags);
    case DS_OPT_DOUBLE: {
      const double def = std::clamp(g_ascii_strtod(o.default_value, nullptr), o.min, o.max);
      return g_param_spec_double(o.name, o.name, blurb.c_str(), o.min, o.max, def, flags);
    }
  }
  return nullptr;
}

std::string ValueToText(const GValue* value) {
  switch (G_VALUE_TYPE(value)) {
    case G_TYPE_STRING: {
      const char* s = g_value_get_string(value);
      return s ? s : "";
    }
    case G_TYPE_INT:
      return std::to_string(g_value_get_int(value));
    case G_TYPE_INT64:
      return std::to_string(g_value_get_int64(value));
    case G_TYPE_DOUBLE: {
      char buf[G_ASCII_DTOSTR_BUF_SIZE];
      return g_ascii_dtostr(buf, sizeof buf, g_value_get_double(value));
    }
    default:
      return "";
  }
}

void TextToValue(const std::string& text, GValue* value) {
  switch (G_VALUE_TYPE(value)) {
    case G_TYPE_STRING:
      g_value_set_string(value, text.c_str());
      break;
    case G_TYPE_INT:
      g_value_set_int(value, static_cast<gint>(g_ascii_strtoll(text.c_str(), nullptr, 10)));
      break;
    case G_TYPE_INT64:
      g_value_set_int64(value, g_ascii_strtoll(text.c_str(), nullptr, 10));
      break;
    case G_TYPE_DOUBLE:
      g_value_set_double(value, g_ascii_strtod(text.c_str(), nullptr));
      break;
    default:
      break;
  }
}

}  // namespace ditsrc
