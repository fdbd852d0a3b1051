/* ditstream public C API: the only header the front ends (CLI, GStreamer, FFmpeg) include.
 *
 * Life cycle: ds_create() → ds_set_option()… → ds_load() → ds_generate()… → ds_destroy().
 * Every call returns a ds_status; on failure ds_error_message() holds one line naming what was wrong.
 * No C++ exception ever crosses this boundary. A generator is used by one thread at a time, except
 * ds_cancel(), which any thread may call at any time. ds_generate's callbacks may read the
 * generator (ds_get_*) and cancel it; a call that would change it (ds_set_*, ds_load, ds_generate,
 * the embeddings calls) returns DS_ERR_STATE there, and ds_destroy must wait until ds_generate
 * has returned. That refusal guards re-entry from the callbacks only, not other threads: a host
 * that changes options from another thread serialises its calls with ds_generate itself (as
 * ditsrc does, applying changes between clips). The CPU backend's GEMMs run inside its own OpenMP team: it sets
 * OpenBLAS's process-wide thread count to 1 while it works (a host that uses OpenBLAS sets its own again). */
#ifndef DITSTREAM_H
#define DITSTREAM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define DS_API __attribute__((visibility("default")))
#else
#define DS_API
#endif

typedef enum ds_status {
  DS_OK = 0,
  DS_ERR_INVALID_ARGUMENT = 1, /* an option value out of range, an unknown option name */
  DS_ERR_IO = 2,               /* a file could not be read or written */
  DS_ERR_MODEL = 3,            /* a model file is malformed or does not match its config */
  DS_ERR_UNSUPPORTED = 4,      /* a size, device or feature this model or build does not support */
  DS_ERR_CANCELLED = 5,        /* ds_cancel() or a callback asked to stop */
  DS_ERR_OUT_OF_MEMORY = 6,
  DS_ERR_INTERNAL = 7,
  DS_ERR_STATE = 8 /* a call in the wrong order (generate before load) */
} ds_status;

typedef struct ds_generator ds_generator;

/* ---- options: one table drives CLI flags, GStreamer properties and FFmpeg options ---- */

typedef enum ds_option_type {
  DS_OPT_STRING = 0,
  DS_OPT_INT = 1,    /* int64 range [min, max] */
  DS_OPT_DOUBLE = 2 /* double range [min, max] */
} ds_option_type;

typedef struct ds_option_info {
  const char* name; /* canonical, dash-separated: "negative-prompt" (CLI --negative-prompt,
                       GStreamer property negative-prompt, FFmpeg option negative_prompt) */
  ds_option_type type;
  const char* default_value; /* as text, parsable by ds_set_option */
  double min, max;           /* numeric options only */
  const char* help;          /* one sentence */
  int applies_between_clips; /* 1: may change while streaming, takes effect at the next clip */
} ds_option_info;

DS_API int ds_option_count(void);
DS_API const ds_option_info* ds_option_at(int index);
DS_API const ds_option_info* ds_option_find(const char* name); /* accepts '-' or '_' */

/* ---- logging: a process-wide sink (the GStreamer element routes it to GST_DEBUG) ---- */

typedef enum ds_log_level { DS_LOG_ERROR = 0, DS_LOG_WARNING = 1, DS_LOG_INFO = 2, DS_LOG_DEBUG = 3 } ds_log_level;
typedef void (*ds_log_fn)(void* user, ds_log_level level, const char* message);
/* NULL restores the default sink (stderr, warnings and errors only). The sink is called from any
 * thread that logs, one message at a time; it may call ds_set_log_sink itself. */
DS_API void ds_set_log_sink(ds_log_fn fn, void* user);

/* ---- generator ---- */

/* The version this header describes; ds_version() gives the library's ("0.6.0"), which may be newer
 * (a client built against an older header reads only what that header declares). The option
 * table grows by appending: "lora" since 0.5.0; "cache-threshold", "guidance-2" and "lora-2" since 0.6.0. */
#define DS_VERSION_MAJOR 0
#define DS_VERSION_MINOR 6
#define DS_VERSION_PATCH 0
DS_API const char* ds_version(void);
DS_API ds_generator* ds_create(void); /* NULL only when out of memory */
DS_API void ds_destroy(ds_generator* gen);
/* The message of the last failure, valid until the next failing call on this generator (a call
 * refused inside a callback included) or ds_destroy. */
DS_API const char* ds_error_message(const ds_generator* gen);

/* DS_ERR_INVALID_ARGUMENT naming the option for a value out of its range or form; "prompt" and
 * "negative-prompt" must be UTF-8 (the error names the first bad byte), at most 1 MiB. */
DS_API ds_status ds_set_option(ds_generator* gen, const char* name, const char* value);
/* Writes the current value as text into buf (always NUL-terminated), cut to size − 1 bytes: a
 * value that fills buf (strlen == size − 1) may have been cut, so ask again with a larger buf. */
DS_API ds_status ds_get_option(const ds_generator* gen, const char* name, char* buf, size_t size);

/* Loads the model named by the "model" option: a folder path (a ditstream model folder, or a Wan2.1
 * text-to-video folder in the diffusers layout), or the name of a model folder in $DITSTREAM_MODELS
 * or the bundled models ("demo"). Validates width/height/frames against the model. Call again
 * after changing model, device, threads or lora; other options are read at each ds_generate().
 * A load starts the stream afresh: the next ds_generate() delivers frame 0 of clip 0, and a
 * pending ds_seek() is dropped. The model loaded before is freed first (two never share memory),
 * so after a failure no model is loaded (DS_ERR_STATE from the calls that need one), except when
 * only the sizes failed (DS_ERR_UNSUPPORTED for a width, height or clip length the model does not
 * make): the model stays loaded, and ds_get_model_info() says what it makes. */
DS_API ds_status ds_load(ds_generator* gen);

typedef struct ds_model_info {
  const char* family; /* "demo", "wan2.1"; valid until the next ds_load or ds_destroy */
  int native_width, native_height, native_frames;
  int fps_num, fps_den;
  int min_width, max_width, width_step; /* supported sizes: min + k·step ≤ max */
  int min_height, max_height, height_step;
  int min_frames, max_frames, frames_step; /* and frames ≡ min_frames (mod frames_step) */
  int default_steps;
  double default_guidance, default_shift;
  int continuation_prefix_frames; /* a continued clip (continue_previous) re-uses up to this many
                                     frames of the previous one and delivers frames − that many new
                                     frames; fewer for short clips: at most frames − frames_step
                                     (whole steps), so at least one step is new; 0 (wan2.1): a
                                     continued clip starts afresh, a cut */
} ds_model_info;
DS_API ds_status ds_get_model_info(const ds_generator* gen, ds_model_info* out);

/* Width, height and frame count that ds_generate will produce with the current options. */
DS_API ds_status ds_get_output_shape(const ds_generator* gen, int* width, int* height, int* frames);

/* The provenance of the video ds_generate would make now with the current options: one line of
 * JSON saying it is AI-generated ("ai_generated": true), by which engine ("generator") and model
 * ("model": name and family), with everything needed to make it again as resolved ("prompt",
 * "negative_prompt", "seed", "steps", "guidance", "shift", "width", "height", "frames", "fps",
 * "device") and the option table as set ("options"). The model appears by its folder's name, never
 * a local path. For a container's comment tag. Writes it NUL-terminated into buf when it fits;
 * *length (when non-NULL) receives its length without the NUL either way, so size 0 (buf may then
 * be NULL) asks how much to allocate. DS_ERR_INVALID_ARGUMENT when it does not fit (buf untouched),
 * DS_ERR_STATE before ds_load. Since 0.3.0. */
DS_API ds_status ds_get_provenance(const ds_generator* gen, char* buf, size_t size, size_t* length);

/* The layout of delivered frames. All are 8 bits a sample, made from the decoder's output by the
 * same arithmetic on every device (a GPU converts each frame where it was decoded, and only its
 * bytes reach the host). */
typedef enum ds_pixel_format {
  DS_PIXEL_RGB = 0,  /* packed R, G, B: the default */
  DS_PIXEL_RGBA = 1, /* packed R, G, B, A with A = 255 */
  DS_PIXEL_I420 = 2, /* planes Y, U, V, limited range (Y 16-235, Cb/Cr 16-240) in the matrix
                        ds_set_yuv_matrix chose (BT.601 until set), a chroma sample per 2x2 block
                        (the mean of its pixels; half blocks at odd edges) */
  DS_PIXEL_NV12 = 3, /* I420's samples in two planes: Y, then U and V interleaved (U first), rows of
                        2·((width + 1)/2) bytes: what hardware encoders take. Since 0.3.0 */
  DS_PIXEL_FORMAT_MIN_ = -0x7fffffff - 1, /* not formats: they make every int a valid value of the */
  DS_PIXEL_FORMAT_MAX_ = 0x7fffffff       /* type in C++ too, so a bad one is refused, not undefined */
} ds_pixel_format;
/* The format of the frames the next ds_generate delivers (and every one after), DS_PIXEL_RGB
 * until set. DS_ERR_INVALID_ARGUMENT for a value outside the enum. Not while ds_generate runs on
 * this generator (it reads the format when it starts). Since 0.2.0. */
DS_API ds_status ds_set_pixel_format(ds_generator* gen, ds_pixel_format format);

/* The Y'CbCr matrix of DS_PIXEL_I420 and DS_PIXEL_NV12 frames. Tag the stream with the one chosen:
 * GStreamer's colorimetry "bt601" / "bt709", FFmpeg's AVCOL_SPC_SMPTE170M / AVCOL_SPC_BT709
 * (limited range). */
typedef enum ds_yuv_matrix {
  DS_YUV_BT601 = 0,                     /* Kr 0.299, Kb 0.114: the default, and SD video's */
  DS_YUV_BT709 = 1,                     /* Kr 0.2126, Kb 0.0722: HD video's */
  DS_YUV_MATRIX_MIN_ = -0x7fffffff - 1, /* not matrices (see DS_PIXEL_FORMAT_MAX_) */
  DS_YUV_MATRIX_MAX_ = 0x7fffffff
} ds_yuv_matrix;
/* The matrix of the YUV frames the next ds_generate delivers (and every one after), DS_YUV_BT601
 * until set; RGB and RGBA frames ignore it. DS_ERR_INVALID_ARGUMENT for a value outside the enum.
 * Not while ds_generate runs on this generator. Since 0.3.0. */
DS_API ds_status ds_set_yuv_matrix(ds_generator* gen, ds_yuv_matrix matrix);

typedef struct ds_frame {
  const uint8_t* rgb; /* DS_PIXEL_RGB: width·height·3 bytes, row stride = width·3; NULL in other formats */
  int width, height;
  int64_t index; /* frame number since the first clip of this generator (continuations count on) */
  int clip;      /* clip number, 0 for the first */
  /* The frame in the format ds_set_pixel_format chose: `planes` planes (1 for RGB and RGBA; 3 for
   * I420: Y, then U and V of (width + 1)/2 x (height + 1)/2 samples; 2 for NV12: Y, then the U, V
   * pairs), each at data[i] with rows of stride[i] bytes and no padding. All valid during the
   * callback only. These fields were appended in 0.2.0: a client that reads them needs a library
   * whose ds_version() is 0.2.0 or later. */
  ds_pixel_format format;
  int planes;
  const uint8_t* data[3];
  int stride[3];
  ds_yuv_matrix matrix; /* I420's and NV12's matrix (ds_set_yuv_matrix), unspecified for RGB and
                           RGBA. Appended in 0.3.0: reading it needs ds_version() 0.3.0 or later */
} ds_frame;

typedef enum ds_stage { DS_STAGE_TEXT = 0, DS_STAGE_DENOISE = 1, DS_STAGE_DECODE = 2 } ds_stage;
typedef struct ds_progress {
  ds_stage stage;
  int step, total; /* denoise: step i of n (1-based); decode: frame i of n, or with Wan2.1's VAE
                      tiles (vae-tiling) tile-frame i of tiles x frames */
  int clip;
} ds_progress;

/* Return non-zero from the frame callback to stop generation (ds_generate returns DS_ERR_CANCELLED). */
typedef int (*ds_frame_fn)(void* user, const ds_frame* frame);
typedef void (*ds_progress_fn)(void* user, const ds_progress* progress);

/* Generates one clip, calling on_frame for each decoded frame in order, as soon as it exists.
 * continue_previous != 0 continues the previous clip's motion (prefix-frame conditioning on its last
 * frames): the new clip's frames follow the last frame delivered, with no repeats. After a clip that
 * stopped early (ds_cancel, or the frame callback), it makes that clip again and delivers from the
 * first frame the callback did not take (a frame it refused comes again). A model without
 * prefix conditioning (continuation_prefix_frames 0) starts the clip from its own noise instead, and
 * its frames still number on. */
/* Prompt embeddings for reuse (Wan2.1): ds_save_embeddings writes the text encoder's output for the
 * current "prompt" and "negative_prompt" to a file (safetensors; written atomically);
 * ds_load_embeddings reads one and sets "prompt" and "negative_prompt" to the texts it holds, so
 * the next ds_generate() never runs the text encoder. DS_ERR_UNSUPPORTED for the demo family;
 * DS_ERR_INVALID_ARGUMENT for a file of another model family or width. After ds_load(). */
DS_API ds_status ds_save_embeddings(ds_generator* gen, const char* path);
DS_API ds_status ds_load_embeddings(ds_generator* gen, const char* path);

DS_API ds_status ds_generate(ds_generator* gen, int continue_previous, ds_frame_fn on_frame, ds_progress_fn on_progress,
                             void* user);

/* Seeking: the next ds_generate() starts a new stream (as continue_previous = 0 does, whatever it
 * says) that delivers frames from `frame` on (numbered as ds_frame.index numbers them: frame 0 is
 * the stream's first); later calls continue it when they pass continue_previous != 0 (a call with 0
 * starts over at frame 0, as always). The frames are those a fresh stream makes with the
 * same options, and the earlier ones cost what the model needs of them: a model whose clips
 * continue the previous one's (continuation_prefix_frames > 0) denoises the clips before the
 * target's clip again, one ds_generate() call each, which then delivers no frame, and decodes none
 * of their frames; a model whose clips start afresh (Wan2.1) starts at the target's clip.
 * DS_ERR_INVALID_ARGUMENT for a frame below 0 or above INT_MAX; DS_ERR_STATE before ds_load() or during
 * ds_generate(). Appended in 0.4.0: a client that calls it needs ds_version() 0.4.0 or later. */
DS_API ds_status ds_seek(ds_generator* gen, int64_t frame);

/* Thread-safe and async-signal-safe (a lock-free atomic store): makes the running (or the next)
 * ds_generate return DS_ERR_CANCELLED promptly. */
DS_API void ds_cancel(ds_generator* gen);
/* Clears a pending cancellation so that the generator can be used again. */
DS_API void ds_reset_cancel(ds_generator* gen);

#ifdef __cplusplus
}
#endif
#endif /* DITSTREAM_H */
