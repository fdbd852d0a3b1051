// The `ditstream` GStreamer plugin: one element, ditsrc.
#include "gstditsrc.h"

static gboolean plugin_init(GstPlugin* plugin) { return gst_dit_src_register(plugin); }

GST_PLUGIN_DEFINE(GST_VERSION_MAJOR, GST_VERSION_MINOR, ditstream, "Video generated from text prompts by ditstream",
                  plugin_init, DS_PLUGIN_VERSION, "MIT/X11", "ditstream", "ditstream")
