// SPDX-License-Identifier: GPL-2.0
/*
 * daedalus-v4l2: the stateful decoder video device (formats, ioctls, vb2
 * queue operations, controls). Documentation/userspace-api/media/v4l/
 * dev-decoder.rst is the contract; buffers are forwarded to the daemon by
 * daedalus_session.c.
 */

#include <linux/minmax.h>
#include <linux/slab.h>
#include <linux/sizes.h>
#include <linux/string.h>
#include <media/v4l2-event.h>
#include <media/v4l2-ioctl.h>

#include "daedalus.h"
#include "daedalus_compat.h"

#define DAEDALUS_DEF_WIDTH	1920
#define DAEDALUS_DEF_HEIGHT	1080
#define DAEDALUS_MIN_CODED_SIZE	SZ_2M
/* an intra frame of 4K HEVC at a high bitrate; more only strains CMA */
#define DAEDALUS_MAX_CODED_SIZE	SZ_16M

struct daedalus_coded_fmt {
	u32 fourcc;
	const char *description;	/* only needed where v4l2-core has none */
};

/* Every coded format the module knows, in ENUM_FMT order. */
static const struct daedalus_coded_fmt daedalus_coded_fmts[] = {
	{ V4L2_PIX_FMT_H264 },
	{ V4L2_PIX_FMT_HEVC },
	{ V4L2_PIX_FMT_VP9 },
	{ V4L2_PIX_FMT_AV1, "AV1" },
	{ V4L2_PIX_FMT_VP8 },
	{ V4L2_PIX_FMT_MPEG2 },
};

static const u32 daedalus_cap_fmts_8bit[] = {
	V4L2_PIX_FMT_NV12, V4L2_PIX_FMT_NV12M, V4L2_PIX_FMT_YUV420,
};

static const u32 daedalus_cap_fmts_all[] = {
	V4L2_PIX_FMT_NV12, V4L2_PIX_FMT_NV12M, V4L2_PIX_FMT_YUV420,
	V4L2_PIX_FMT_P010,
};

static const struct daedalus_coded_fmt *daedalus_find_coded(u32 fourcc)
{
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(daedalus_coded_fmts); i++)
		if (daedalus_coded_fmts[i].fourcc == fourcc)
			return &daedalus_coded_fmts[i];
	return NULL;
}

bool daedalus_coded_format_known(u32 fourcc)
{
	return daedalus_find_coded(fourcc);
}

/*
 * The coded formats clients may use: what the connected daemon announced,
 * or every known one while no daemon is connected (so a client probing the
 * device before the daemon starts still sees a decoder).
 */
static unsigned int daedalus_coded_list(struct daedalus_ctx *ctx,
					u32 formats[DAEDALUS_MAX_CODED_FORMATS])
{
	unsigned int i, n;

	n = daedalus_chan_formats(&ctx->dev->chan, formats);
	if (n)
		return n;
	for (i = 0; i < ARRAY_SIZE(daedalus_coded_fmts); i++)
		formats[i] = daedalus_coded_fmts[i].fourcc;
	return ARRAY_SIZE(daedalus_coded_fmts);
}

/* Coded formats whose profiles are all 8-bit: no P010 for them. */
static bool daedalus_coded_8bit_only(u32 fourcc)
{
	return fourcc == V4L2_PIX_FMT_VP8 || fourcc == V4L2_PIX_FMT_MPEG2;
}

/*
 * Capture formats valid now: the stream's bit depth decides once it is
 * known; before, every format the coded format may need.
 */
static const u32 *daedalus_cap_list(struct daedalus_ctx *ctx, unsigned int *n)
{
	if (ctx->stream_known && ctx->stream.bit_depth == 10) {
		*n = 1;
		return &daedalus_cap_fmts_all[3];
	}
	if (ctx->stream_known ||
	    daedalus_coded_8bit_only(ctx->out_fmt.pixelformat)) {
		*n = ARRAY_SIZE(daedalus_cap_fmts_8bit);
		return daedalus_cap_fmts_8bit;
	}
	*n = ARRAY_SIZE(daedalus_cap_fmts_all);
	return daedalus_cap_fmts_all;
}

/*
 * Layout of a decoded frame, as the UAPI header describes it: rows of
 * ALIGN(width * bytes per sample, 64) bytes, chroma planes of half height
 * (rounded up).
 */
void daedalus_fill_cap_fmt(struct v4l2_pix_format_mplane *pix, u32 pixelformat,
			   u32 width, u32 height)
{
	u32 bpp = pixelformat == V4L2_PIX_FMT_P010 ? 2 : 1;
	u32 bpl = ALIGN(width * bpp, 64);
	u32 luma = bpl * height;
	u32 chroma = bpl * (ALIGN(height, 2) / 2);

	pix->pixelformat = pixelformat;
	pix->width = width;
	pix->height = height;
	pix->field = V4L2_FIELD_NONE;
	pix->flags = 0;
	memset(pix->reserved, 0, sizeof(pix->reserved));
	memset(pix->plane_fmt, 0, sizeof(pix->plane_fmt));

	if (pixelformat == V4L2_PIX_FMT_NV12M) {
		pix->num_planes = 2;
		pix->plane_fmt[0].bytesperline = bpl;
		pix->plane_fmt[0].sizeimage = luma;
		pix->plane_fmt[1].bytesperline = bpl;
		pix->plane_fmt[1].sizeimage = chroma;
	} else {
		/* NV12, P010: CbCr interleaved; YUV420: Cb, Cr at bpl / 2 */
		pix->num_planes = 1;
		pix->plane_fmt[0].bytesperline = bpl;
		pix->plane_fmt[0].sizeimage = luma + chroma;
	}
}

static u32 daedalus_coded_sizeimage(u32 width, u32 height, u32 asked)
{
	/* room for an intra frame at about 6 bits per pixel */
	u32 def = clamp_t(u32, width * height * 3 / 4,
			  DAEDALUS_MIN_CODED_SIZE, DAEDALUS_MAX_CODED_SIZE);

	if (asked >= def && asked <= DAEDALUS_MAX_CODED_SIZE)
		return asked;
	return def;
}

static void daedalus_copy_colorimetry(struct v4l2_pix_format_mplane *dst,
				      const struct v4l2_pix_format_mplane *src)
{
	dst->colorspace = src->colorspace;
	dst->xfer_func = src->xfer_func;
	dst->ycbcr_enc = src->ycbcr_enc;
	dst->quantization = src->quantization;
}

/* Capture colorimetry: the stream's where it says, else the client's. */
static void daedalus_cap_colorimetry(struct daedalus_ctx *ctx,
				     struct v4l2_pix_format_mplane *pix)
{
	daedalus_copy_colorimetry(pix, &ctx->out_fmt);
	if (!ctx->stream_known)
		return;
	if (ctx->stream.colorspace)
		pix->colorspace = ctx->stream.colorspace;
	if (ctx->stream.xfer_func)
		pix->xfer_func = ctx->stream.xfer_func;
	if (ctx->stream.ycbcr_enc)
		pix->ycbcr_enc = ctx->stream.ycbcr_enc;
	if (ctx->stream.quantization)
		pix->quantization = ctx->stream.quantization;
}

static void daedalus_try_out(struct daedalus_ctx *ctx,
			     struct v4l2_pix_format_mplane *pix)
{
	u32 formats[DAEDALUS_MAX_CODED_FORMATS];
	unsigned int i, n = daedalus_coded_list(ctx, formats);
	u32 asked = pix->plane_fmt[0].sizeimage;

	for (i = 0; i < n; i++)
		if (formats[i] == pix->pixelformat)
			break;
	if (i == n)
		pix->pixelformat = formats[0];

	pix->width = clamp_t(u32, pix->width, DAEDALUS_MIN_SIZE,
			     DAEDALUS_MAX_SIZE);
	pix->height = clamp_t(u32, pix->height, DAEDALUS_MIN_SIZE,
			      DAEDALUS_MAX_SIZE);
	pix->field = V4L2_FIELD_NONE;
	pix->num_planes = 1;
	pix->flags = 0;
	memset(pix->reserved, 0, sizeof(pix->reserved));
	memset(pix->plane_fmt, 0, sizeof(pix->plane_fmt));
	pix->plane_fmt[0].sizeimage =
		daedalus_coded_sizeimage(pix->width, pix->height, asked);

	if (pix->colorspace == V4L2_COLORSPACE_DEFAULT ||
	    pix->colorspace > V4L2_COLORSPACE_DCI_P3)
		pix->colorspace = V4L2_COLORSPACE_REC709;
	if (pix->xfer_func > V4L2_XFER_FUNC_SMPTE2084)
		pix->xfer_func = V4L2_XFER_FUNC_DEFAULT;
	if (pix->ycbcr_enc > V4L2_YCBCR_ENC_SMPTE240M)
		pix->ycbcr_enc = V4L2_YCBCR_ENC_DEFAULT;
	if (pix->quantization > V4L2_QUANTIZATION_LIM_RANGE)
		pix->quantization = V4L2_QUANTIZATION_DEFAULT;
}

static void daedalus_try_cap(struct daedalus_ctx *ctx,
			     struct v4l2_pix_format_mplane *pix)
{
	unsigned int i, n;
	const u32 *list = daedalus_cap_list(ctx, &n);
	u32 width, height;

	for (i = 0; i < n; i++)
		if (list[i] == pix->pixelformat)
			break;
	if (i == n)
		pix->pixelformat = list[0];

	if (ctx->stream_known) {
		/* the stream decides the frame size, not the client */
		width = ctx->stream.width;
		height = ctx->stream.height;
	} else {
		width = clamp_t(u32, pix->width, DAEDALUS_MIN_SIZE,
				DAEDALUS_MAX_SIZE);
		height = clamp_t(u32, pix->height, DAEDALUS_MIN_SIZE,
				 DAEDALUS_MAX_SIZE);
	}
	daedalus_fill_cap_fmt(pix, pix->pixelformat, width, height);
	daedalus_cap_colorimetry(ctx, pix);
}

/* ------------------------------------------------------------------ */
/* ioctls                                                              */
/* ------------------------------------------------------------------ */

static int daedalus_querycap(struct file *file, void *priv,
			     struct v4l2_capability *cap)
{
	strscpy(cap->driver, DAEDALUS_NAME, sizeof(cap->driver));
	strscpy(cap->card, DAEDALUS_CARD, sizeof(cap->card));
	strscpy(cap->bus_info, "platform:" DAEDALUS_NAME, sizeof(cap->bus_info));
	return 0;
}

static int daedalus_enum_fmt_out(struct file *file, void *priv,
				 struct v4l2_fmtdesc *f)
{
	struct daedalus_ctx *ctx = fh_to_ctx(file->private_data);
	u32 formats[DAEDALUS_MAX_CODED_FORMATS];
	const struct daedalus_coded_fmt *coded;
	unsigned int n = daedalus_coded_list(ctx, formats);

	if (f->index >= n)
		return -EINVAL;
	coded = daedalus_find_coded(formats[f->index]);
	if (!coded)
		return -EINVAL;
	f->pixelformat = coded->fourcc;
	f->flags = V4L2_FMT_FLAG_COMPRESSED | V4L2_FMT_FLAG_DYN_RESOLUTION;
	if (daedalus_chan_continuous(&ctx->dev->chan, coded->fourcc))
		f->flags |= V4L2_FMT_FLAG_CONTINUOUS_BYTESTREAM;
	if (coded->description)
		strscpy(f->description, coded->description,
			sizeof(f->description));
	return 0;
}

static int daedalus_enum_fmt_cap(struct file *file, void *priv,
				 struct v4l2_fmtdesc *f)
{
	struct daedalus_ctx *ctx = fh_to_ctx(file->private_data);
	const u32 *list;
	unsigned int n;
	int ret = 0;

	mutex_lock(&ctx->lock);
	list = daedalus_cap_list(ctx, &n);
	if (f->index >= n)
		ret = -EINVAL;
	else
		f->pixelformat = list[f->index];
	mutex_unlock(&ctx->lock);
	return ret;
}

static int daedalus_g_fmt(struct file *file, void *priv, struct v4l2_format *f)
{
	struct daedalus_ctx *ctx = fh_to_ctx(file->private_data);

	mutex_lock(&ctx->lock);
	if (V4L2_TYPE_IS_OUTPUT(f->type))
		f->fmt.pix_mp = ctx->out_fmt;
	else
		f->fmt.pix_mp = ctx->cap_fmt;
	mutex_unlock(&ctx->lock);
	return 0;
}

static int daedalus_try_fmt_out(struct file *file, void *priv,
				struct v4l2_format *f)
{
	struct daedalus_ctx *ctx = fh_to_ctx(file->private_data);

	mutex_lock(&ctx->lock);
	daedalus_try_out(ctx, &f->fmt.pix_mp);
	mutex_unlock(&ctx->lock);
	return 0;
}

static int daedalus_try_fmt_cap(struct file *file, void *priv,
				struct v4l2_format *f)
{
	struct daedalus_ctx *ctx = fh_to_ctx(file->private_data);

	mutex_lock(&ctx->lock);
	daedalus_try_cap(ctx, &f->fmt.pix_mp);
	mutex_unlock(&ctx->lock);
	return 0;
}

static int daedalus_s_fmt_out(struct file *file, void *priv,
			      struct v4l2_format *f)
{
	struct daedalus_ctx *ctx = fh_to_ctx(file->private_data);
	struct v4l2_pix_format_mplane *pix = &f->fmt.pix_mp;
	int ret = 0;

	mutex_lock(&ctx->lock);
	/*
	 * dev-decoder.rst: -EBUSY "if any of the queues has buffers
	 * allocated": a new coded format would strand CAPTURE buffers made
	 * for the old stream.
	 */
	if (vb2_is_busy(daedalus_vq(ctx, DAEDALUS_QUEUE_OUTPUT)) ||
	    vb2_is_busy(daedalus_vq(ctx, DAEDALUS_QUEUE_CAPTURE))) {
		ret = -EBUSY;
		goto out;
	}
	daedalus_try_out(ctx, pix);
	ctx->out_fmt = *pix;

	/*
	 * dev-decoder.rst: setting the OUTPUT format resets the CAPTURE
	 * format to one derived from it, until the stream says otherwise.
	 */
	if (!ctx->stream_known) {
		daedalus_fill_cap_fmt(&ctx->cap_fmt, ctx->cap_fmt.pixelformat,
				      pix->width, pix->height);
		daedalus_cap_colorimetry(ctx, &ctx->cap_fmt);
	}
out:
	mutex_unlock(&ctx->lock);
	return ret;
}

static int daedalus_s_fmt_cap(struct file *file, void *priv,
			      struct v4l2_format *f)
{
	struct daedalus_ctx *ctx = fh_to_ctx(file->private_data);
	int ret = 0;

	mutex_lock(&ctx->lock);
	if (vb2_is_busy(daedalus_vq(ctx, DAEDALUS_QUEUE_CAPTURE))) {
		ret = -EBUSY;
		goto out;
	}
	daedalus_try_cap(ctx, &f->fmt.pix_mp);
	ctx->cap_fmt = f->fmt.pix_mp;
out:
	mutex_unlock(&ctx->lock);
	return ret;
}

static int daedalus_g_selection(struct file *file, void *priv,
				struct v4l2_selection *s)
{
	struct daedalus_ctx *ctx = fh_to_ctx(file->private_data);
	int ret = 0;

	/* v4l2-core maps the _MPLANE types to the single-plane ones here */
	if (s->type != V4L2_BUF_TYPE_VIDEO_CAPTURE)
		return -EINVAL;

	mutex_lock(&ctx->lock);
	/*
	 * dev-decoder.rst, CAPTURE selection of a decoder that neither
	 * scales nor composes nor writes padding: CROP_BOUNDS is the coded
	 * frame, every other target the visible rectangle (the coded frame
	 * until the stream is known).
	 */
	s->r.left = 0;
	s->r.top = 0;
	s->r.width = ctx->cap_fmt.width;
	s->r.height = ctx->cap_fmt.height;
	switch (s->target) {
	case V4L2_SEL_TGT_CROP_BOUNDS:
		break;
	case V4L2_SEL_TGT_CROP:
	case V4L2_SEL_TGT_CROP_DEFAULT:
	case V4L2_SEL_TGT_COMPOSE:
	case V4L2_SEL_TGT_COMPOSE_DEFAULT:
	case V4L2_SEL_TGT_COMPOSE_BOUNDS:
	case V4L2_SEL_TGT_COMPOSE_PADDED:
		if (ctx->stream_known) {
			s->r.left = ctx->stream.visible_left;
			s->r.top = ctx->stream.visible_top;
			s->r.width = ctx->stream.visible_width;
			s->r.height = ctx->stream.visible_height;
		}
		break;
	default:
		ret = -EINVAL;
	}
	mutex_unlock(&ctx->lock);
	return ret;
}

static int daedalus_enum_framesizes(struct file *file, void *priv,
				    struct v4l2_frmsizeenum *fsize)
{
	/* only coded formats: the frame size of a stream is not a choice */
	if (fsize->index || !daedalus_find_coded(fsize->pixel_format))
		return -EINVAL;
	fsize->type = V4L2_FRMSIZE_TYPE_STEPWISE;
	fsize->stepwise.min_width = DAEDALUS_MIN_SIZE;
	fsize->stepwise.max_width = DAEDALUS_MAX_SIZE;
	fsize->stepwise.step_width = 1;
	fsize->stepwise.min_height = DAEDALUS_MIN_SIZE;
	fsize->stepwise.max_height = DAEDALUS_MAX_SIZE;
	fsize->stepwise.step_height = 1;
	return 0;
}

static int daedalus_decoder_cmd(struct file *file, void *priv,
				struct v4l2_decoder_cmd *dc)
{
	struct daedalus_ctx *ctx = fh_to_ctx(file->private_data);
	struct v4l2_m2m_ctx *m2m_ctx = ctx->fh.m2m_ctx;
	int ret;

	ret = v4l2_m2m_ioctl_try_decoder_cmd(file, priv, dc);
	if (ret)
		return ret;

	mutex_lock(&ctx->lock);
	/* dev-decoder.rst: without both queues streaming it is a no-op */
	if (!vb2_is_streaming(&m2m_ctx->out_q_ctx.q))
		goto out;
	if (!vb2_is_streaming(&m2m_ctx->cap_q_ctx.q)) {
		/*
		 * ... but the m2m helpers (vicodec) keep such a STOP until
		 * CAPTURE streams, and v4l2-ctl relies on it: it sends STOP
		 * as soon as the file fits in its OUTPUT buffers, before the
		 * source change. What is queued until then joins the drain.
		 */
		ctx->drain_at_streamon = dc->cmd == V4L2_DEC_CMD_STOP;
		goto out;
	}

	/* a drain, or a STREAMOFF waiting for the daemon, is in progress */
	if (m2m_ctx->is_draining || ctx->out.told || ctx->cap.told) {
		ret = -EBUSY;
		goto out;
	}

	if (dc->cmd == V4L2_DEC_CMD_STOP) {
		if (!v4l2_m2m_has_stopped(m2m_ctx))
			ret = daedalus_session_drain(ctx);
		goto out;
	}

	/* V4L2_DEC_CMD_START after a resolution change's LAST buffer */
	if (ctx->change_end_sent) {
		ret = daedalus_session_resume_capture(ctx);
		goto out;
	}
	/* V4L2_DEC_CMD_START: leave the stopped state, feed held bitstream */
	if (v4l2_m2m_has_stopped(m2m_ctx)) {
		m2m_ctx->has_stopped = false;
		vb2_clear_last_buffer_dequeued(&m2m_ctx->cap_q_ctx.q);
		daedalus_session_push(ctx, DAEDALUS_QUEUE_OUTPUT);
	}
out:
	mutex_unlock(&ctx->lock);
	return ret;
}

/*
 * The daemon lets go of the queue's buffers before vb2 gives them back
 * (daedalus_session_take_back_sync()). v4l2-core holds ctx->lock here: it
 * is the m2m queue lock of buffer ioctls.
 */
static int daedalus_streamoff(struct file *file, void *priv,
			      enum v4l2_buf_type type)
{
	struct daedalus_ctx *ctx = fh_to_ctx(file->private_data);

	if (type == V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE)
		daedalus_session_take_back_sync(ctx, DAEDALUS_QUEUE_OUTPUT);
	else if (type == V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE)
		daedalus_session_take_back_sync(ctx, DAEDALUS_QUEUE_CAPTURE);
	return v4l2_m2m_ioctl_streamoff(file, priv, type);
}

static int daedalus_subscribe_event(struct v4l2_fh *fh,
				    const struct v4l2_event_subscription *sub)
{
	switch (sub->type) {
	case V4L2_EVENT_EOS:
		return v4l2_event_subscribe(fh, sub, 0, NULL);
	case V4L2_EVENT_SOURCE_CHANGE:
		return v4l2_src_change_event_subscribe(fh, sub);
	default:
		return v4l2_ctrl_subscribe_event(fh, sub);
	}
}

static const struct v4l2_ioctl_ops daedalus_ioctl_ops = {
	.vidioc_querycap		= daedalus_querycap,

	.vidioc_enum_fmt_vid_out	= daedalus_enum_fmt_out,
	.vidioc_g_fmt_vid_out_mplane	= daedalus_g_fmt,
	.vidioc_try_fmt_vid_out_mplane	= daedalus_try_fmt_out,
	.vidioc_s_fmt_vid_out_mplane	= daedalus_s_fmt_out,

	.vidioc_enum_fmt_vid_cap	= daedalus_enum_fmt_cap,
	.vidioc_g_fmt_vid_cap_mplane	= daedalus_g_fmt,
	.vidioc_try_fmt_vid_cap_mplane	= daedalus_try_fmt_cap,
	.vidioc_s_fmt_vid_cap_mplane	= daedalus_s_fmt_cap,

	.vidioc_enum_framesizes		= daedalus_enum_framesizes,
	.vidioc_g_selection		= daedalus_g_selection,

	.vidioc_reqbufs			= v4l2_m2m_ioctl_reqbufs,
	.vidioc_querybuf		= v4l2_m2m_ioctl_querybuf,
	.vidioc_qbuf			= v4l2_m2m_ioctl_qbuf,
	.vidioc_dqbuf			= v4l2_m2m_ioctl_dqbuf,
	.vidioc_prepare_buf		= v4l2_m2m_ioctl_prepare_buf,
	.vidioc_create_bufs		= v4l2_m2m_ioctl_create_bufs,
	.vidioc_expbuf			= v4l2_m2m_ioctl_expbuf,
	.vidioc_streamon		= v4l2_m2m_ioctl_streamon,
	.vidioc_streamoff		= daedalus_streamoff,

	.vidioc_try_decoder_cmd		= v4l2_m2m_ioctl_try_decoder_cmd,
	.vidioc_decoder_cmd		= daedalus_decoder_cmd,

	.vidioc_subscribe_event		= daedalus_subscribe_event,
	.vidioc_unsubscribe_event	= v4l2_event_unsubscribe,
};

/* ------------------------------------------------------------------ */
/* vb2 queue operations                                                */
/* ------------------------------------------------------------------ */

static unsigned int daedalus_queue_of(struct vb2_queue *q)
{
	return V4L2_TYPE_IS_OUTPUT(q->type) ?
		DAEDALUS_QUEUE_OUTPUT : DAEDALUS_QUEUE_CAPTURE;
}

static int daedalus_queue_setup(struct vb2_queue *q, unsigned int *nbuffers,
				unsigned int *nplanes, unsigned int sizes[],
				struct device *alloc_devs[])
{
	struct daedalus_ctx *ctx = vb2_get_drv_priv(q);
	const struct v4l2_pix_format_mplane *pix;
	struct daedalus_qstate *qs;
	unsigned int i;

	/* CAPTURE: what the stream needs now; REQBUFS and CREATE_BUFS alike */
	pix = V4L2_TYPE_IS_OUTPUT(q->type) ? &ctx->out_fmt : &ctx->cap_fmt;

	if (*nplanes) {
		/* CREATE_BUFS: the client's sizes must hold the format */
		if (*nplanes != pix->num_planes)
			return -EINVAL;
		for (i = 0; i < *nplanes; i++)
			if (sizes[i] < pix->plane_fmt[i].sizeimage)
				return -EINVAL;
	} else {
		*nplanes = pix->num_planes;
		for (i = 0; i < *nplanes; i++)
			sizes[i] = pix->plane_fmt[i].sizeimage;
		/*
		 * REQBUFS(CAPTURE): dev-decoder.rst lets the driver raise the
		 * count to V4L2_CID_MIN_BUFFERS_FOR_CAPTURE, what the stream
		 * needs to decode at all.
		 */
		if (!V4L2_TYPE_IS_OUTPUT(q->type))
			*nbuffers = max_t(unsigned int, *nbuffers,
					  v4l2_ctrl_g_ctrl(ctx->min_cap_ctrl));
	}

	/*
	 * The buffers made now get this generation (buf_init); those already
	 * there keep theirs, so CREATE_BUFS never makes them stale.
	 */
	qs = V4L2_TYPE_IS_OUTPUT(q->type) ? &ctx->out : &ctx->cap;
	if (!++qs->generation)
		qs->generation = 1;
	return 0;
}

/*
 * vb2 calls this once per allocation (MMAP) and each time QBUF or
 * PREPARE_BUF attaches another dma-buf or length under the index (DMABUF):
 * the daemon's cached mapping of the index is then of the old memory and
 * the next message tells it so (mem_seq, see the UAPI header).
 */
static int daedalus_buf_init(struct vb2_buffer *vb)
{
	struct daedalus_ctx *ctx = vb2_get_drv_priv(vb->vb2_queue);
	struct daedalus_buf *dbuf = vbuf_to_dbuf(to_vb2_v4l2_buffer(vb));

	/* vb2 zeroes a buffer it allocates: the first call names it */
	if (!dbuf->generation)
		dbuf->generation = V4L2_TYPE_IS_OUTPUT(vb->vb2_queue->type) ?
				   ctx->out.generation : ctx->cap.generation;

	/* 0 means "unknown" on the wire */
	if (!++dbuf->mem_seq)
		dbuf->mem_seq = 1;
	return 0;
}

static int daedalus_buf_out_validate(struct vb2_buffer *vb)
{
	struct vb2_v4l2_buffer *vbuf = to_vb2_v4l2_buffer(vb);

	vbuf->field = V4L2_FIELD_NONE;
	return 0;
}

static bool daedalus_buf_fits(struct vb2_buffer *vb,
			      const struct v4l2_pix_format_mplane *pix)
{
	unsigned int i;

	if (vb->num_planes != pix->num_planes)
		return false;
	for (i = 0; i < vb->num_planes; i++)
		if (vb2_plane_size(vb, i) < pix->plane_fmt[i].sizeimage)
			return false;
	return true;
}

/*
 * Whether every CAPTURE buffer queued to the driver holds the negotiated
 * format (CAPTURE STREAMON, V4L2_DEC_CMD_START after a resolution change).
 */
bool daedalus_queued_capture_fits(struct daedalus_ctx *ctx)
{
	struct v4l2_m2m_queue_ctx *q_ctx = &ctx->fh.m2m_ctx->cap_q_ctx;
	struct v4l2_m2m_buffer *b;
	unsigned long flags;
	bool fits = true;

	spin_lock_irqsave(&q_ctx->rdy_spinlock, flags);
	list_for_each_entry(b, &q_ctx->rdy_queue, list)
		fits &= daedalus_buf_fits(&b->vb.vb2_buf, &ctx->cap_fmt);
	spin_unlock_irqrestore(&q_ctx->rdy_spinlock, flags);
	return fits;
}

/*
 * A CAPTURE buffer must hold the layout it will be announced with: the
 * streaming one, or while CAPTURE is stopped the one STREAMON will fix.
 */
static int daedalus_buf_prepare(struct vb2_buffer *vb)
{
	struct daedalus_ctx *ctx = vb2_get_drv_priv(vb->vb2_queue);

	if (V4L2_TYPE_IS_OUTPUT(vb->vb2_queue->type))
		return 0;
	return daedalus_buf_fits(vb, vb2_is_streaming(vb->vb2_queue) ?
				 &ctx->cap_stream_fmt : &ctx->cap_fmt) ?
	       0 : -EINVAL;
}

static void daedalus_buf_queue(struct vb2_buffer *vb)
{
	struct daedalus_ctx *ctx = vb2_get_drv_priv(vb->vb2_queue);
	struct vb2_v4l2_buffer *vbuf = to_vb2_v4l2_buffer(vb);

	vbuf_to_dbuf(vbuf)->with_daemon = false;
	if (V4L2_TYPE_IS_OUTPUT(vb->vb2_queue->type))
		daedalus_session_remember(ctx, vbuf);
	v4l2_m2m_buf_queue(ctx->fh.m2m_ctx, vbuf);
	/* during STREAMON this only queues: start_streaming sends */
	daedalus_session_push(ctx, daedalus_queue_of(vb->vb2_queue));
}

/*
 * CAPTURE STREAMON fixes the layout CAPTURE messages carry (the format
 * negotiated by now, after a resolution change the new one); buffers
 * queued before must hold it.
 */
static int daedalus_capture_start(struct daedalus_ctx *ctx)
{
	if (!daedalus_queued_capture_fits(ctx))
		return -EINVAL;
	ctx->cap_stream_fmt = ctx->cap_fmt;
	ctx->cap.sequence = 0;
	ctx->change_end_allowed = false;
	return 0;
}

static int daedalus_start_streaming(struct vb2_queue *q, unsigned int count)
{
	struct daedalus_ctx *ctx = vb2_get_drv_priv(q);
	unsigned int queue = daedalus_queue_of(q);
	int ret = 0;

	if (ctx->state == DAEDALUS_SESSION_FAILED) {
		/* dev-decoder.rst: stop both queues to recover */
		ret = -EIO;
	} else if (queue == DAEDALUS_QUEUE_OUTPUT) {
		ret = daedalus_session_start(ctx);
		ctx->out.sequence = 0;
	} else {
		ret = daedalus_capture_start(ctx);
	}
	if (ret) {
		/* vb2 wants the buffers it handed over back as QUEUED */
		daedalus_session_take_back(ctx, queue, VB2_BUF_STATE_QUEUED);
		return ret;
	}

	v4l2_m2m_update_start_streaming_state(ctx->fh.m2m_ctx, q);
	if (queue == DAEDALUS_QUEUE_CAPTURE)
		daedalus_session_unpark(ctx);
	daedalus_session_push_all(ctx);
	if (queue == DAEDALUS_QUEUE_CAPTURE && ctx->drain_at_streamon) {
		ctx->drain_at_streamon = false;
		if (vb2_is_streaming(&ctx->fh.m2m_ctx->out_q_ctx.q))
			daedalus_session_drain(ctx);
	}
	return 0;
}

static void daedalus_stop_streaming(struct vb2_queue *q)
{
	struct daedalus_ctx *ctx = vb2_get_drv_priv(q);
	unsigned int queue = daedalus_queue_of(q);

	/*
	 * A drain started before a resolution change survives the CAPTURE
	 * restart the change asks for: FFmpeg's v4l2m2m wrapper reallocates
	 * and then waits for LAST without sending STOP again. Any other
	 * CAPTURE STREAMOFF aborts the drain, as dev-decoder.rst says.
	 */
	if (queue == DAEDALUS_QUEUE_CAPTURE)
		ctx->drain_at_streamon = ctx->fh.m2m_ctx->is_draining &&
					 ctx->change_end_sent;
	else
		ctx->drain_at_streamon = false;

	daedalus_session_stop(ctx, queue);

	if (queue == DAEDALUS_QUEUE_CAPTURE) {
		ctx->change_end_allowed = false;
		ctx->change_end_sent = false;
		/* leaves draining and stopped: what CAPTURE_RESET means */
		v4l2_m2m_update_stop_streaming_state(ctx->fh.m2m_ctx, q);
	} else {
		/*
		 * Not v4l2_m2m_update_stop_streaming_state(): during a drain
		 * it would complete a CAPTURE buffer the daemon may own. The
		 * daemon ends the drain itself (see DAEDALUS_K2D_FLUSH).
		 */
		ctx->fh.m2m_ctx->last_src_buf = NULL;
		/*
		 * dev-decoder.rst, Drain step 3: STREAMOFF(OUTPUT) of a
		 * stopped decoder starts a seek, after which it decodes again.
		 */
		if (!ctx->fh.m2m_ctx->is_draining &&
		    v4l2_m2m_has_stopped(ctx->fh.m2m_ctx)) {
			ctx->fh.m2m_ctx->has_stopped = false;
			vb2_clear_last_buffer_dequeued(daedalus_vq(ctx, DAEDALUS_QUEUE_CAPTURE));
		}
	}
	if (!vb2_is_streaming(daedalus_vq(ctx, queue == DAEDALUS_QUEUE_OUTPUT ?
					  DAEDALUS_QUEUE_CAPTURE :
					  DAEDALUS_QUEUE_OUTPUT)))
		daedalus_session_stopped(ctx);
}

static const struct vb2_ops daedalus_qops = {
	.queue_setup		= daedalus_queue_setup,
	.buf_init		= daedalus_buf_init,
	.buf_out_validate	= daedalus_buf_out_validate,
	.buf_prepare		= daedalus_buf_prepare,
	.buf_queue		= daedalus_buf_queue,
	.start_streaming	= daedalus_start_streaming,
	.stop_streaming		= daedalus_stop_streaming,
#if DAEDALUS_VB2_WAIT_OPS
	.wait_prepare		= vb2_ops_wait_prepare,
	.wait_finish		= vb2_ops_wait_finish,
#endif
};

static int daedalus_queue_init(void *priv, struct vb2_queue *src_vq,
			       struct vb2_queue *dst_vq)
{
	struct daedalus_ctx *ctx = priv;
	struct vb2_queue *qs[] = { src_vq, dst_vq };
	unsigned int i;
	int ret;

	for (i = 0; i < ARRAY_SIZE(qs); i++) {
		struct vb2_queue *q = qs[i];

		q->type = i == 0 ? V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE :
				   V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE;
		/* no USERPTR: the daemon needs a dma-buf of every buffer */
		q->io_modes = VB2_MMAP | VB2_DMABUF;
		q->drv_priv = ctx;
		q->buf_struct_size = sizeof(struct daedalus_buf);
		q->ops = &daedalus_qops;
		q->mem_ops = ctx->dev->mem_ops;
		q->timestamp_flags = V4L2_BUF_FLAG_TIMESTAMP_COPY;
		/* a client asking for more than memory allows gets -ENOMEM, not a WARN */
		q->gfp_flags = __GFP_NOWARN;
		q->lock = &ctx->lock;
		q->dev = &ctx->dev->pdev->dev;
		ret = vb2_queue_init(q);
		if (ret)
			return ret;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* file operations                                                     */
/* ------------------------------------------------------------------ */

static void daedalus_default_fmts(struct daedalus_ctx *ctx)
{
	struct v4l2_pix_format_mplane *out = &ctx->out_fmt;

	out->pixelformat = V4L2_PIX_FMT_H264;
	out->width = DAEDALUS_DEF_WIDTH;
	out->height = DAEDALUS_DEF_HEIGHT;
	out->colorspace = V4L2_COLORSPACE_REC709;
	daedalus_try_out(ctx, out);

	daedalus_fill_cap_fmt(&ctx->cap_fmt, V4L2_PIX_FMT_NV12,
			      out->width, out->height);
	daedalus_copy_colorimetry(&ctx->cap_fmt, out);
	ctx->cap_stream_fmt = ctx->cap_fmt;
}

static int daedalus_open(struct file *file)
{
	struct daedalus_dev *dev = video_drvdata(file);
	struct daedalus_ctx *ctx;
	struct v4l2_ctrl_handler *hdl;
	int ret;

	ctx = kzalloc(sizeof(*ctx), GFP_KERNEL);
	if (!ctx)
		return -ENOMEM;
	ctx->dev = dev;
	ret = daedalus_session_init(ctx);
	if (ret) {
		kfree(ctx);
		return ret;
	}
	v4l2_fh_init(&ctx->fh, video_devdata(file));
	file->private_data = &ctx->fh;

	hdl = &ctx->hdl;
	v4l2_ctrl_handler_init(hdl, 1);
	/* the daemon's FORMAT sets the real value */
	ctx->min_cap_ctrl = v4l2_ctrl_new_std(hdl, NULL,
					      V4L2_CID_MIN_BUFFERS_FOR_CAPTURE,
					      1, DAEDALUS_MAX_MIN_BUFS, 1, 4);
	if (hdl->error) {
		ret = hdl->error;
		goto err_hdl;
	}
	ctx->fh.ctrl_handler = hdl;

	daedalus_default_fmts(ctx);

	ctx->fh.m2m_ctx = v4l2_m2m_ctx_init(dev->m2m_dev, ctx,
					    daedalus_queue_init);
	if (IS_ERR(ctx->fh.m2m_ctx)) {
		ret = PTR_ERR(ctx->fh.m2m_ctx);
		goto err_hdl;
	}
	ctx->fh.m2m_ctx->q_lock = &ctx->lock;

	daedalus_fh_add(&ctx->fh, file);
	return 0;

err_hdl:
	v4l2_ctrl_handler_free(hdl);
	v4l2_fh_exit(&ctx->fh);
	daedalus_session_put(ctx);
	return ret;
}

static int daedalus_release(struct file *file)
{
	struct daedalus_ctx *ctx = fh_to_ctx(file->private_data);

	/* ends the daemon's session and takes every buffer back */
	daedalus_session_release(ctx);

	daedalus_fh_del(&ctx->fh, file);
	v4l2_fh_exit(&ctx->fh);
	v4l2_ctrl_handler_free(&ctx->hdl);
	/* a daemon reply may still hold the ctx: it sees RELEASED */
	daedalus_session_put(ctx);
	return 0;
}

static const struct v4l2_file_operations daedalus_fops = {
	.owner		= THIS_MODULE,
	.open		= daedalus_open,
	.release	= daedalus_release,
	.poll		= v4l2_m2m_fop_poll,
	.unlocked_ioctl	= video_ioctl2,
	.mmap		= v4l2_m2m_fop_mmap,
};

/*
 * Queues are decoupled (one bitstream buffer gives zero, one or several
 * frames), so the m2m job scheduler is never used: job_ready says no job is
 * ever ready and buffers go to the daemon from buf_queue. v4l2_m2m_init()
 * still insists on a device_run.
 */
static int daedalus_job_ready(void *priv)
{
	return 0;
}

static void daedalus_device_run(void *priv)
{
}

static const struct v4l2_m2m_ops daedalus_m2m_ops = {
	.device_run	= daedalus_device_run,
	.job_ready	= daedalus_job_ready,
};

int daedalus_video_register(struct daedalus_dev *dev)
{
	struct video_device *vdev = &dev->vdev;
	int ret;

	dev->m2m_dev = v4l2_m2m_init(&daedalus_m2m_ops);
	if (IS_ERR(dev->m2m_dev)) {
		ret = PTR_ERR(dev->m2m_dev);
		v4l2_err(&dev->v4l2_dev, "v4l2_m2m_init: %d\n", ret);
		return ret;
	}

	strscpy(vdev->name, DAEDALUS_CARD, sizeof(vdev->name));
	vdev->fops = &daedalus_fops;
	vdev->ioctl_ops = &daedalus_ioctl_ops;
	vdev->release = video_device_release_empty;
	vdev->v4l2_dev = &dev->v4l2_dev;
	vdev->vfl_dir = VFL_DIR_M2M;
	vdev->device_caps = V4L2_CAP_VIDEO_M2M_MPLANE | V4L2_CAP_STREAMING;
	/*
	 * No vdev->lock: queue ioctls take the per-file m2m_ctx->q_lock,
	 * the others take ctx->lock themselves.
	 */

	/* what a decoder lacks */
	v4l2_disable_ioctl(vdev, VIDIOC_ENCODER_CMD);
	v4l2_disable_ioctl(vdev, VIDIOC_TRY_ENCODER_CMD);
	v4l2_disable_ioctl(vdev, VIDIOC_G_PARM);
	v4l2_disable_ioctl(vdev, VIDIOC_S_PARM);
	v4l2_disable_ioctl(vdev, VIDIOC_ENUM_FRAMEINTERVALS);
	v4l2_disable_ioctl(vdev, VIDIOC_S_SELECTION);
	video_set_drvdata(vdev, dev);

	ret = video_register_device(vdev, VFL_TYPE_VIDEO, -1);
	if (ret) {
		v4l2_err(&dev->v4l2_dev, "video_register_device: %d\n", ret);
		goto err_m2m;
	}

	ret = v4l2_m2m_register_media_controller(dev->m2m_dev, vdev,
						 MEDIA_ENT_F_PROC_VIDEO_DECODER);
	if (ret) {
		v4l2_err(&dev->v4l2_dev, "media controller: %d\n", ret);
		goto err_vdev;
	}
	return 0;

err_vdev:
	video_unregister_device(vdev);
err_m2m:
	v4l2_m2m_release(dev->m2m_dev);
	return ret;
}

void daedalus_video_unregister(struct daedalus_dev *dev)
{
	v4l2_m2m_unregister_media_controller(dev->m2m_dev);
	video_unregister_device(&dev->vdev);
	v4l2_m2m_release(dev->m2m_dev);
}
