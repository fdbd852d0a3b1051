/* gst_frei0r_live MODEL_DIR: plays frei0r-src-ditstream (GStreamer's frei0r wrapper around our
 * plugin) for 40 buffers and changes string properties while it plays. GStreamer 1.22 passes such
 * live changes to f0r_set_param_value as char* instead of frei0r's char**, so this is the path that
 * would crash or garble a plugin that trusts the spec. Exit 0 on EOS after 40 buffers. */
#include <gst/gst.h>
#include <stdio.h>

#define BUFFERS 40

typedef struct {
  GstElement *src;
  int buffers;
} State;

/* fakesink's handoff runs on the streaming thread, between two f0r_update calls. */
static void on_handoff(GstElement *sink, GstBuffer *buffer, GstPad *pad, gpointer user) {
  State *state = user;
  (void)sink, (void)buffer, (void)pad;
  state->buffers++;
  if (state->buffers == 5) g_object_set(state->src, "prompt", "a green circle moving left", NULL);
  if (state->buffers == 6) g_object_set(state->src, "options", "seed=5&negative-prompt=red", NULL);
  if (state->buffers == 7) g_object_set(state->src, "prompt", "", NULL); /* ignored with a warning */
}

int main(int argc, char **argv) {
  GError *error = NULL;
  gchar *description;
  GstElement *pipeline, *sink;
  GstBus *bus;
  GstMessage *msg;
  State state = {NULL, 0};
  int ok;

  gst_init(&argc, &argv);
  if (argc != 2) {
    fprintf(stderr, "usage: gst_frei0r_live MODEL_DIR\n");
    return 2;
  }
  description = g_strdup_printf(
      "frei0r-src-ditstream name=src model=%s num-buffers=%d ! video/x-raw,width=64,height=64,framerate=8/1"
      " ! fakesink name=sink signal-handoffs=true sync=false",
      argv[1], BUFFERS);
  pipeline = gst_parse_launch(description, &error);
  g_free(description);
  if (error) { /* a missing element gives a partial pipeline and an error */
    fprintf(stderr, "gst_frei0r_live: %s\n", error->message);
    return 1;
  }
  state.src = gst_bin_get_by_name(GST_BIN(pipeline), "src");
  sink = gst_bin_get_by_name(GST_BIN(pipeline), "sink");
  g_signal_connect(sink, "handoff", G_CALLBACK(on_handoff), &state);

  gst_element_set_state(pipeline, GST_STATE_PLAYING);
  bus = gst_element_get_bus(pipeline);
  msg = gst_bus_timed_pop_filtered(bus, GST_CLOCK_TIME_NONE, GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  ok = GST_MESSAGE_TYPE(msg) == GST_MESSAGE_EOS && state.buffers == BUFFERS;
  if (!ok) fprintf(stderr, "gst_frei0r_live: %s after %d buffers\n", GST_MESSAGE_TYPE_NAME(msg), state.buffers);
  gst_message_unref(msg);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(bus);
  gst_object_unref(sink);
  gst_object_unref(state.src);
  gst_object_unref(pipeline);
  return ok ? 0 : 1;
}
