// The engine's option table as GObject properties: one GParamSpec per table row, and the text form
// the C API takes (ds_set_option) for a property value.
#pragma once

#include <glib-object.h>

#include <string>

#include "ditstream.h"

namespace ditsrc {

// string → G_TYPE_STRING; int → gint, or gint64 when the range does not fit a gint; double →
// gdouble; range and default from the table. Options that may change while playing are
// GST_PARAM_MUTABLE_PLAYING, the others GST_PARAM_MUTABLE_READY. NULL for an unknown type.
GParamSpec* ParamSpecFor(const ds_option_info& option);

// Text as ds_set_option parses it: C-locale numbers, doubles with round-trip precision.
std::string ValueToText(const GValue* value);
// Sets value (already initialised to the property's type) from text written by the engine or by
// ValueToText.
void TextToValue(const std::string& text, GValue* value);

}  // namespace ditsrc
