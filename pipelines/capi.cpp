// The C API (include/ditstream.h) over TextToVideo: status codes and messages instead of
// exceptions, and a cancellation flag any thread may set.
#include <atomic>
#include <climits>
#include <cstring>
#include <mutex>
#include <new>
#include <string>

#include "core/log.h"
#include "ditstream.h"
#include "pipelines/options.h"
#include "pipelines/provenance.h"
#include "pipelines/text_to_video.h"

static_assert(static_cast<int>(ds::PixelFormat::kRgb) == DS_PIXEL_RGB &&
              static_cast<int>(ds::PixelFormat::kRgba) == DS_PIXEL_RGBA &&
              static_cast<int>(ds::PixelFormat::kI420) == DS_PIXEL_I420 &&
              static_cast<int>(ds::PixelFormat::kNv12) == DS_PIXEL_NV12);
static_assert(static_cast<int>(ds::YuvMatrix::kBt601) == DS_YUV_BT601 &&
              static_cast<int>(ds::YuvMatrix::kBt709) == DS_YUV_BT709);

struct ds_generator {
  ds::Options opts = ds::DefaultOptions();
  ds::FrameFormat format;  // RGB until ds_set_pixel_format; YUV in BT.601 until ds_set_yuv_matrix
  std::unique_ptr<ds::TextToVideo> engine;
  ds::Options loaded;  // the options ds_load loaded with: the model and device the engine runs
  std::string error;
  std::atomic<bool> cancel{false};
  std::atomic<bool> generating{false};  // inside ds_generate: its callbacks may not change the generator
};

namespace {

ds_status ToC(ds::Code code) {
  switch (code) {
    case ds::Code::kOk:
      return DS_OK;
    case ds::Code::kInvalidArgument:
      return DS_ERR_INVALID_ARGUMENT;
    case ds::Code::kIo:
      return DS_ERR_IO;
    case ds::Code::kModel:
      return DS_ERR_MODEL;
    case ds::Code::kUnsupported:
      return DS_ERR_UNSUPPORTED;
    case ds::Code::kCancelled:
      return DS_ERR_CANCELLED;
    case ds::Code::kOutOfMemory:
      return DS_ERR_OUT_OF_MEMORY;
    case ds::Code::kInternal:
      return DS_ERR_INTERNAL;
    case ds::Code::kState:
      return DS_ERR_STATE;
  }
  return DS_ERR_INTERNAL;
}

ds_status Fail(ds_generator* g, const ds::Status& s) {
  if (g != nullptr) g->error = s.message();
  return ToC(s.code());
}

// Runs body, turning a Status or an escaping exception into a ds_status and a message.
template <typename F>
ds_status Guard(ds_generator* g, F&& body) {
  try {
    const ds::Status s = body();
    if (s.ok()) return DS_OK;
    return Fail(g, s);
  } catch (const std::bad_alloc&) {
    return Fail(g, ds::Status(ds::Code::kOutOfMemory, "out of memory"));
  } catch (const std::exception& e) {
    return Fail(g, ds::Status(ds::Code::kInternal, std::string("internal error: ") + e.what()));
  } catch (...) {
    return Fail(g, ds::Status(ds::Code::kInternal, "internal error"));
  }
}

ds_status NullGenerator() { return DS_ERR_INVALID_ARGUMENT; }

// What a frame or progress callback may not do to the generator that calls it: load a model,
// generate, or change what the running clip reads.
ds::Status NotWhileGenerating(const ds_generator* g, const char* call) {
  if (!g->generating.load()) return ds::Status::Ok();
  return ds::Status(
      ds::Code::kState,
      std::string(call) + " while ds_generate runs (from one of its callbacks): call it after ds_generate returns");
}

}  // namespace

extern "C" {

int ds_option_count(void) { return static_cast<int>(ds::OptionTable().size()); }

const ds_option_info* ds_option_at(int index) {
  const auto table = ds::OptionTable();
  if (index < 0 || index >= static_cast<int>(table.size())) return nullptr;
  return &table[index];
}

const ds_option_info* ds_option_find(const char* name) { return name ? ds::FindOption(name) : nullptr; }

void ds_set_log_sink(ds_log_fn fn, void* user) {
  if (fn == nullptr) {
    ds::SetLogSink({});
    return;
  }
  ds::SetLogSink([fn, user](ds::LogLevel level, std::string_view msg) {
    const std::string text(msg);
    fn(user, static_cast<ds_log_level>(level), text.c_str());
  });
}

const char* ds_version(void) { return DS_VERSION; }

ds_generator* ds_create(void) { return new (std::nothrow) ds_generator(); }

void ds_destroy(ds_generator* gen) { delete gen; }

const char* ds_error_message(const ds_generator* gen) {
  return gen == nullptr ? "no generator (NULL)" : gen->error.c_str();
}

ds_status ds_set_option(ds_generator* gen, const char* name, const char* value) {
  if (gen == nullptr) return NullGenerator();
  return Guard(gen, [&] {
    if (name == nullptr || value == nullptr)
      return ds::Status(ds::Code::kInvalidArgument, "option name or value is NULL");
    DS_TRY(NotWhileGenerating(gen, "ds_set_option"));
    return ds::SetOption(gen->opts, name, value);
  });
}

ds_status ds_get_option(const ds_generator* gen, const char* name, char* buf, size_t size) {
  if (gen == nullptr) return NullGenerator();
  auto* g = const_cast<ds_generator*>(gen);
  return Guard(g, [&] {
    if (name == nullptr || buf == nullptr)
      return ds::Status(ds::Code::kInvalidArgument, "option name or buffer is NULL");
    if (size == 0) return ds::Status(ds::Code::kInvalidArgument, "a buffer of size 0 holds no value");
    ds::Result<std::string> v = ds::GetOption(gen->opts, name);
    if (!v.ok()) return v.status();
    const size_t n = std::min(size - 1, v->size());
    std::memcpy(buf, v->data(), n);
    buf[n] = '\0';
    return ds::Status::Ok();
  });
}

ds_status ds_load(ds_generator* gen) {
  if (gen == nullptr) return NullGenerator();
  return Guard(gen, [&] {
    DS_TRY(NotWhileGenerating(gen, "ds_load"));
    gen->engine.reset();
    DS_ASSIGN_OR_RETURN(gen->engine, ds::TextToVideo::Load(gen->opts));
    gen->loaded = gen->opts;
    return gen->engine->Shape(gen->opts).status();
  });
}

ds_status ds_get_model_info(const ds_generator* gen, ds_model_info* out) {
  if (gen == nullptr) return NullGenerator();
  auto* g = const_cast<ds_generator*>(gen);
  return Guard(g, [&] {
    if (out == nullptr) return ds::Status(ds::Code::kInvalidArgument, "NULL model info");
    if (!gen->engine) return ds::Status(ds::Code::kState, "no model loaded: call ds_load first");
    const ds::ModelInfo& i = gen->engine->info();  // family stays valid until the next ds_load
    *out = ds_model_info{};
    out->family = i.family.c_str();
    out->native_width = i.native_width;
    out->native_height = i.native_height;
    out->native_frames = i.native_frames;
    out->fps_num = i.fps;
    out->fps_den = 1;
    out->min_width = out->min_height = i.min_side;
    out->max_width = out->max_height = i.max_side;
    out->width_step = out->height_step = i.side_step;
    out->min_frames = i.min_frames;
    out->max_frames = i.max_frames;
    out->frames_step = i.frames_step;
    out->default_steps = i.default_steps;
    out->default_guidance = i.default_guidance;
    out->default_shift = i.default_shift;
    out->continuation_prefix_frames = i.continuation_prefix_frames;
    return ds::Status::Ok();
  });
}

ds_status ds_get_output_shape(const ds_generator* gen, int* width, int* height, int* frames) {
  if (gen == nullptr) return NullGenerator();
  auto* g = const_cast<ds_generator*>(gen);
  return Guard(g, [&] {
    if (!gen->engine) return ds::Status(ds::Code::kState, "no model loaded: call ds_load first");
    DS_ASSIGN_OR_RETURN(ds::OutputShape s, gen->engine->Shape(gen->opts));
    if (width) *width = s.width;
    if (height) *height = s.height;
    if (frames) *frames = s.frames;
    return ds::Status::Ok();
  });
}

ds_status ds_get_provenance(const ds_generator* gen, char* buf, size_t size, size_t* length) {
  if (gen == nullptr) return NullGenerator();
  auto* g = const_cast<ds_generator*>(gen);
  return Guard(g, [&] {
    if (!gen->engine) return ds::Status(ds::Code::kState, "no model loaded: call ds_load first");
    if (buf == nullptr && size > 0) return ds::Status(ds::Code::kInvalidArgument, "NULL buffer of nonzero size");
    DS_ASSIGN_OR_RETURN(const ds::OutputShape shape, gen->engine->Shape(gen->opts));
    // The model, device, threads and LoRAs are the loaded ones, whatever the options say since ds_load.
    ds::Options made_with = gen->opts;
    made_with.model = gen->loaded.model;
    made_with.device = gen->loaded.device;
    made_with.threads = gen->loaded.threads;
    made_with.lora = gen->loaded.lora;
    made_with.lora_2 = gen->loaded.lora_2;
    const ds::Backend& backend = gen->engine->backend();
    const std::string json =
        ds::ProvenanceJson(made_with, gen->engine->info(), shape, backend.name(), backend.threads());
    if (length != nullptr) *length = json.size();
    if (size == 0) return ds::Status::Ok();
    if (json.size() >= size) {
      return ds::Status(ds::Code::kInvalidArgument, "provenance needs " + std::to_string(json.size() + 1) +
                                                        " bytes, the buffer has " + std::to_string(size));
    }
    std::memcpy(buf, json.data(), json.size() + 1);
    return ds::Status::Ok();
  });
}

ds_status ds_set_pixel_format(ds_generator* gen, ds_pixel_format format) {
  if (gen == nullptr) return NullGenerator();
  return Guard(gen, [&] {
    if (format < DS_PIXEL_RGB || format > DS_PIXEL_NV12) {
      return ds::Status(ds::Code::kInvalidArgument, "pixel format " + std::to_string(static_cast<int>(format)) +
                                                        " is none of RGB (0), RGBA (1), I420 (2), NV12 (3)");
    }
    DS_TRY(NotWhileGenerating(gen, "ds_set_pixel_format"));
    gen->format.pixels = static_cast<ds::PixelFormat>(format);  // the same numbers (static_assert above)
    return ds::Status::Ok();
  });
}

ds_status ds_set_yuv_matrix(ds_generator* gen, ds_yuv_matrix matrix) {
  if (gen == nullptr) return NullGenerator();
  return Guard(gen, [&] {
    if (matrix < DS_YUV_BT601 || matrix > DS_YUV_BT709) {
      return ds::Status(ds::Code::kInvalidArgument, "YUV matrix " + std::to_string(static_cast<int>(matrix)) +
                                                        " is none of BT.601 (0), BT.709 (1)");
    }
    DS_TRY(NotWhileGenerating(gen, "ds_set_yuv_matrix"));
    gen->format.matrix = static_cast<ds::YuvMatrix>(matrix);  // the same numbers (static_assert above)
    return ds::Status::Ok();
  });
}

ds_status ds_generate(ds_generator* gen, int continue_previous, ds_frame_fn on_frame, ds_progress_fn on_progress,
                      void* user) {
  if (gen == nullptr) return NullGenerator();
  return Guard(gen, [&] {
    if (!gen->engine) return ds::Status(ds::Code::kState, "no model loaded: call ds_load first");
    DS_TRY(NotWhileGenerating(gen, "ds_generate"));
    if (gen->cancel.load()) return ds::Status(ds::Code::kCancelled, "generation cancelled");
    gen->generating = true;
    struct Done {
      std::atomic<bool>& flag;
      ~Done() { flag = false; }
    } done{gen->generating};
    ds::FrameFn frame_fn = [&](const ds::FrameView& f) {
      if (on_frame == nullptr) return true;
      const ds::FrameLayout l = ds::LayoutOf(f.format.pixels, f.width, f.height);
      ds_frame cf{};
      cf.rgb = f.format.pixels == ds::PixelFormat::kRgb ? f.data : nullptr;
      cf.width = f.width;
      cf.height = f.height;
      cf.index = f.index;
      cf.clip = f.clip;
      cf.format = static_cast<ds_pixel_format>(f.format.pixels);
      cf.matrix = static_cast<ds_yuv_matrix>(f.format.matrix);
      cf.planes = l.planes;
      for (int i = 0; i < l.planes; ++i) {
        cf.data[i] = f.data + l.offset[i];
        cf.stride[i] = l.stride[i];
      }
      return on_frame(user, &cf) == 0;
    };
    ds::ProgressFn progress_fn = [&](const ds::Progress& p) {
      if (on_progress == nullptr) return;
      const ds_progress cp{p.stage, p.step, p.total, p.clip};
      on_progress(user, &cp);
    };
    return gen->engine->Generate(gen->opts, continue_previous != 0, gen->format, frame_fn, progress_fn, gen->cancel);
  });
}

ds_status ds_seek(ds_generator* gen, int64_t frame) {
  if (gen == nullptr) return NullGenerator();
  return Guard(gen, [&] {
    // Clips number as ints (ds_frame.clip): a stream has at most INT_MAX frames to seek in.
    if (frame < 0 || frame > INT_MAX) {
      return ds::Status(ds::Code::kInvalidArgument, "seek to frame " + std::to_string(frame) +
                                                        ": frames number from 0 to " + std::to_string(INT_MAX));
    }
    if (!gen->engine) return ds::Status(ds::Code::kState, "no model loaded: call ds_load first");
    DS_TRY(NotWhileGenerating(gen, "ds_seek"));
    gen->engine->Seek(frame);
    return ds::Status::Ok();
  });
}

ds_status ds_save_embeddings(ds_generator* gen, const char* path) {
  if (gen == nullptr) return NullGenerator();
  return Guard(gen, [&] {
    if (path == nullptr || *path == '\0') return ds::Status(ds::Code::kInvalidArgument, "no path for the embeddings");
    if (!gen->engine) return ds::Status(ds::Code::kState, "no model loaded: call ds_load first");
    DS_TRY(NotWhileGenerating(gen, "ds_save_embeddings"));
    return gen->engine->SaveEmbeddings(gen->opts, path);
  });
}

ds_status ds_load_embeddings(ds_generator* gen, const char* path) {
  if (gen == nullptr) return NullGenerator();
  return Guard(gen, [&] {
    if (path == nullptr || *path == '\0') return ds::Status(ds::Code::kInvalidArgument, "no path for the embeddings");
    if (!gen->engine) return ds::Status(ds::Code::kState, "no model loaded: call ds_load first");
    DS_TRY(NotWhileGenerating(gen, "ds_load_embeddings"));
    DS_ASSIGN_OR_RETURN(ds::PromptEmbeddings e, gen->engine->LoadEmbeddings(path));
    gen->opts.prompt = e.prompt;
    gen->opts.negative_prompt = e.negative_prompt;
    return ds::Status::Ok();
  });
}

void ds_cancel(ds_generator* gen) {
  if (gen != nullptr) gen->cancel.store(true);
}

void ds_reset_cancel(ds_generator* gen) {
  if (gen != nullptr) gen->cancel.store(false);
}

}  // extern "C"
