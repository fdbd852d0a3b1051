/*
 * ditstream video source: generative video from a text prompt (a diffusion transformer), through
 * libditstream's C API.
 *
 * SPDX-License-Identifier: MIT
 * Part of the ditstream project; built into FFmpeg by ffmpeg-5.1-ditstream.patch
 * (configure --enable-libditstream).
 */

/**
 * @file
 * ditstream source: one clip of `frames` frames, then EOF; with clips=N, N clips each continuing the
 * previous one's motion. Options that may change between clips accept commands (sendcmd), and take
 * effect at the next clip.
 *
 * Frames are YUV420P, NV12 or RGB24, whichever the graph negotiates (YUV420P unless asked
 * otherwise): the engine makes each where the model runs (on the GPU for CUDA), so no swscale pass
 * is needed. YUV is limited range in the `matrix` option's colorspace, and the frames are tagged
 * with it.
 */

#include <limits.h>

#include <ditstream.h>

#include "libavutil/imgutils.h"
#include "libavutil/internal.h"
#include "libavutil/opt.h"
#include "avfilter.h"
#include "filters.h"
#include "formats.h"
#include "internal.h"
#include "video.h"

typedef struct DitstreamContext {
    const AVClass *class;

    /* options; vsrc_ditstream_options.h is generated from libditstream's option table */
    char *model, *prompt, *negative_prompt, *device, *vae_tiling, *sampler, *lora, *lora_2;
    int w, h;
    AVRational rate;
    int frames, steps;
    double guidance, shift, cache_threshold, guidance_2;
    int64_t seed;
    int clips;
    int matrix;        ///< the option: MATRIX_AUTO, or a ds_yuv_matrix

    ds_generator *gen;
    int clip;          ///< clips generated so far
    int64_t pts;
    int frame_error;   ///< an AVERROR met while pushing frames from inside ds_generate()
} DitstreamContext;

#define OFFSET(x) offsetof(DitstreamContext, x)
#define FLAGS AV_OPT_FLAG_VIDEO_PARAM | AV_OPT_FLAG_FILTERING_PARAM
#define TFLAGS AV_OPT_FLAG_VIDEO_PARAM | AV_OPT_FLAG_FILTERING_PARAM | AV_OPT_FLAG_RUNTIME_PARAM
#define MATRIX_AUTO -1

static const AVOption ditstream_options[] = {
#include "vsrc_ditstream_options.h"
    { "clips", "number of clips, each continuing the previous one (0 = endless)",
      OFFSET(clips), AV_OPT_TYPE_INT, { .i64 = 1 }, 0, INT_MAX, FLAGS },
    { "matrix", "YUV output colorspace (auto: bt709 above 576 lines, else bt601)",
      OFFSET(matrix), AV_OPT_TYPE_INT, { .i64 = MATRIX_AUTO }, MATRIX_AUTO, DS_YUV_BT709, FLAGS, "matrix" },
    { "auto",  NULL, 0, AV_OPT_TYPE_CONST, { .i64 = MATRIX_AUTO },  0, 0, FLAGS, "matrix" },
    { "bt601", NULL, 0, AV_OPT_TYPE_CONST, { .i64 = DS_YUV_BT601 }, 0, 0, FLAGS, "matrix" },
    { "bt709", NULL, 0, AV_OPT_TYPE_CONST, { .i64 = DS_YUV_BT709 }, 0, 0, FLAGS, "matrix" },
    { NULL }
};

AVFILTER_DEFINE_CLASS(ditstream);

static int ds_to_averror(ds_status status)
{
    switch (status) {
    case DS_OK:                   return 0;
    case DS_ERR_INVALID_ARGUMENT:
    case DS_ERR_UNSUPPORTED:      return AVERROR(EINVAL);
    case DS_ERR_IO:               return AVERROR(EIO);
    case DS_ERR_MODEL:            return AVERROR_INVALIDDATA;
    case DS_ERR_CANCELLED:        return AVERROR_EXIT;
    case DS_ERR_OUT_OF_MEMORY:    return AVERROR(ENOMEM);
    default:                      return AVERROR_EXTERNAL;
    }
}

/* The engine's log is process-wide, so it goes to av_log without a context that could go away. */
static void log_to_av(void *user, ds_log_level level, const char *message)
{
    static const int levels[] = { AV_LOG_ERROR, AV_LOG_WARNING, AV_LOG_VERBOSE, AV_LOG_DEBUG };
    av_log(user, levels[level <= DS_LOG_DEBUG ? level : DS_LOG_DEBUG], "ditstream: %s\n", message);
}

static int fail(AVFilterContext *ctx, ds_status status, const char *what)
{
    DitstreamContext *s = ctx->priv;
    av_log(ctx, AV_LOG_ERROR, "%s: %s\n", what, ds_error_message(s->gen));
    return ds_to_averror(status);
}

static int set_option(AVFilterContext *ctx, const char *name, const char *value)
{
    DitstreamContext *s = ctx->priv;
    ds_status status = ds_set_option(s->gen, name, value);
    return status == DS_OK ? 0 : fail(ctx, status, "Invalid option");
}

/* Hands every AVOption that is also an engine option to the engine as text (at init; commands hand
 * theirs over as they arrive, process_command). */
static int apply_options(AVFilterContext *ctx)
{
    DitstreamContext *s = ctx->priv;
    const AVOption *o = NULL;

    if (!s->prompt || !*s->prompt) {
        av_log(ctx, AV_LOG_ERROR, "The prompt is empty: set prompt=...\n");
        return AVERROR(EINVAL);
    }
    while ((o = av_opt_next(s, o))) {
        const ds_option_info *info = ds_option_find(o->name);
        uint8_t *value;
        int ret;

        if (!info)
            continue;
        if ((ret = av_opt_get(s, o->name, 0, &value)) < 0)
            return ret;
        ret = set_option(ctx, info->name, (const char *)value);
        av_free(value);
        if (ret < 0)
            return ret;
    }
    return 0;
}

/* The engine's threads are libavfilter's generic `threads` option of the filter (nb_threads; 0 =
 * all cores), which shadows an option of that name in the filter's own class. */
static int apply_threads(AVFilterContext *ctx)
{
    char text[32];

    if (ctx->nb_threads <= 0)
        return 0;
    snprintf(text, sizeof(text), "%d", ctx->nb_threads);
    return set_option(ctx, "threads", text);
}

static int apply_size_and_rate(AVFilterContext *ctx)
{
    DitstreamContext *s = ctx->priv;
    char text[64];
    int ret;

    if (s->w > 0) {
        snprintf(text, sizeof(text), "%d", s->w);
        if ((ret = set_option(ctx, "width", text)) < 0)
            return ret;
        snprintf(text, sizeof(text), "%d", s->h);
        if ((ret = set_option(ctx, "height", text)) < 0)
            return ret;
    }
    if (s->rate.num > 0) {
        snprintf(text, sizeof(text), "%.17g", av_q2d(s->rate));
        return set_option(ctx, "fps", text);
    }
    return 0;
}

/* Loads the model here, so that a bad model, size or prompt fails the filter's init with the
 * engine's one-line message. */
static av_cold int init(AVFilterContext *ctx)
{
    DitstreamContext *s = ctx->priv;
    ds_status status;
    int ret;

    ds_set_log_sink(log_to_av, NULL);
    if (!(s->gen = ds_create()))
        return AVERROR(ENOMEM);
    if ((ret = apply_options(ctx)) < 0 || (ret = apply_size_and_rate(ctx)) < 0 ||
        (ret = apply_threads(ctx)) < 0)
        return ret;
    if ((status = ds_load(s->gen)) != DS_OK)
        return fail(ctx, status, "Cannot load the model");
    return 0;
}

static av_cold void uninit(AVFilterContext *ctx)
{
    DitstreamContext *s = ctx->priv;

    ds_destroy(s->gen);
    s->gen = NULL;
}

static int config_props(AVFilterLink *outlink)
{
    AVFilterContext *ctx = outlink->src;
    DitstreamContext *s = ctx->priv;
    ds_model_info info;
    AVRational rate = s->rate;
    ds_status status;
    int w, h;

    if ((status = ds_get_output_shape(s->gen, &w, &h, NULL)) != DS_OK ||
        (status = ds_get_model_info(s->gen, &info)) != DS_OK)
        return fail(ctx, status, "Cannot configure the output");
    if (rate.num <= 0)
        rate = av_make_q(info.fps_num, info.fps_den);

    /* the negotiated format is the one the engine makes */
    if (outlink->format == AV_PIX_FMT_YUV420P || outlink->format == AV_PIX_FMT_NV12) {
        const int matrix = s->matrix != MATRIX_AUTO ? s->matrix : h > 576 ? DS_YUV_BT709 : DS_YUV_BT601;
        if ((status = ds_set_pixel_format(s->gen, outlink->format == AV_PIX_FMT_NV12 ? DS_PIXEL_NV12
                                                                                     : DS_PIXEL_I420)) != DS_OK ||
            (status = ds_set_yuv_matrix(s->gen, (ds_yuv_matrix)matrix)) != DS_OK)
            return fail(ctx, status, "Cannot set the output format");
    } else if ((status = ds_set_pixel_format(s->gen, DS_PIXEL_RGB)) != DS_OK) {
        return fail(ctx, status, "Cannot set the output format");
    }

    outlink->w = w;
    outlink->h = h;
    outlink->frame_rate = rate;
    outlink->time_base = av_inv_q(rate);
    outlink->sample_aspect_ratio = av_make_q(1, 1);
    return 0;
}

/* Called by ds_generate() for each frame as soon as it is decoded. */
static int push_frame(void *user, const ds_frame *f)
{
    AVFilterContext *ctx = user;
    DitstreamContext *s = ctx->priv;
    AVFilterLink *outlink = ctx->outputs[0];
    AVFrame *frame = ff_get_video_buffer(outlink, f->width, f->height);
    int ret;

    if (!frame) {
        s->frame_error = AVERROR(ENOMEM);
        return 1;
    }
    for (int i = 0; i < f->planes; i++) {
        const int rows = i == 0 ? f->height : (f->height + 1) / 2;
        av_image_copy_plane(frame->data[i], frame->linesize[i], f->data[i], f->stride[i], f->stride[i], rows);
    }
    if (f->format == DS_PIXEL_I420 || f->format == DS_PIXEL_NV12) {
        /* as GStreamer's colorimetry bt709 / bt601 tag them; chroma is each 2x2 block's mean */
        const int hd = f->matrix == DS_YUV_BT709;
        frame->colorspace      = hd ? AVCOL_SPC_BT709 : AVCOL_SPC_SMPTE170M;
        frame->color_primaries = hd ? AVCOL_PRI_BT709 : AVCOL_PRI_SMPTE170M;
        frame->color_trc       = hd ? AVCOL_TRC_BT709 : AVCOL_TRC_SMPTE170M;
        frame->color_range     = AVCOL_RANGE_MPEG;
        frame->chroma_location = AVCHROMA_LOC_CENTER;
    }
    frame->pts                 = s->pts++;
    frame->key_frame           = 1;
    frame->interlaced_frame    = 0;
    frame->pict_type           = AV_PICTURE_TYPE_I;
    frame->sample_aspect_ratio = av_make_q(1, 1);
    if ((ret = ff_filter_frame(outlink, frame)) < 0) {
        s->frame_error = ret;
        return 1;
    }
    return 0;
}

static int generate_clip(AVFilterContext *ctx)
{
    DitstreamContext *s = ctx->priv;
    ds_status status;

    s->frame_error = 0;
    status = ds_generate(s->gen, s->clip > 0, push_frame, NULL, ctx);
    if (s->frame_error < 0)
        return s->frame_error;
    if (status != DS_OK)
        return fail(ctx, status, "Generation failed");
    s->clip++;
    return 0;
}

/* A command (sendcmd) sets the option and hands it to the engine at once, so that a value the
 * engine refuses is refused here, the option keeping its previous value, and the stream goes on;
 * the engine applies it from the next clip. */
static int process_command(AVFilterContext *ctx, const char *cmd, const char *args, char *res, int res_len,
                           int flags)
{
    DitstreamContext *s = ctx->priv;
    const ds_option_info *info = ds_option_find(cmd);
    uint8_t *old = NULL, *value = NULL;
    ds_status status;
    int ret;

    if (info && (ret = av_opt_get(s, cmd, 0, &old)) < 0)
        return ret;
    if ((ret = ff_filter_process_command(ctx, cmd, args, res, res_len, flags)) < 0 || !info) {
        av_free(old);
        return ret;
    }
    if ((ret = av_opt_get(s, cmd, 0, &value)) >= 0) {
        status = ds_set_option(s->gen, info->name, (const char *)value);
        if (status != DS_OK) {
            av_log(ctx, AV_LOG_ERROR, "Command %s refused, keeping the previous value: %s\n", cmd,
                   ds_error_message(s->gen));
            av_opt_set(s, cmd, (const char *)old, 0);
            ret = ds_to_averror(status);
        }
    }
    av_free(value);
    av_free(old);
    return ret;
}

static int activate(AVFilterContext *ctx)
{
    DitstreamContext *s = ctx->priv;
    AVFilterLink *outlink = ctx->outputs[0];
    int ret;

    if (!ff_outlink_frame_wanted(outlink))
        return FFERROR_NOT_READY;
    if ((ret = generate_clip(ctx)) < 0)
        return ret;
    if (s->clips > 0 && s->clip >= s->clips)
        ff_outlink_set_status(outlink, AVERROR_EOF, s->pts);
    return 0;
}

static const AVFilterPad ditstream_outputs[] = {
    {
        .name          = "default",
        .type          = AVMEDIA_TYPE_VIDEO,
        .config_props  = config_props,
    },
};

const AVFilter ff_vsrc_ditstream = {
    .name            = "ditstream",
    .description     = NULL_IF_CONFIG_SMALL("Generate video from a text prompt with libditstream."),
    .priv_size       = sizeof(DitstreamContext),
    .priv_class      = &ditstream_class,
    .init            = init,
    .uninit          = uninit,
    .activate        = activate,
    .inputs          = NULL,
    FILTER_OUTPUTS(ditstream_outputs),
    /* YUV420P first: what encoders take (RGB first made libx264 pick 4:4:4, which few players
     * decode); format=nv12 or format=rgb24 in the graph asks for the others */
    FILTER_PIXFMTS(AV_PIX_FMT_YUV420P, AV_PIX_FMT_NV12, AV_PIX_FMT_RGB24),
    .process_command = process_command,
};
