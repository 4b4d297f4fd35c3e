// SPDX-License-Identifier: GPL-2.0
/*
 * daedalus-v4l2: sessions. A session is one V4L2 file handle as the daemon
 * sees it: buffers go out as BITSTREAM/CAPTURE messages, replies come back
 * through daedalus_session_reply() and are checked against what the daemon
 * owns right now. Also: take-back (epochs), daemon death and stalls.
 */

#include <linux/dma-buf.h>
#include <linux/fcntl.h>
#include <linux/jiffies.h>
#include <linux/minmax.h>
#include <linux/string.h>
#include <media/v4l2-event.h>

#include "daedalus.h"

#define daedalus_reject(ctx_dev, fmt, ...)				\
	dev_warn_ratelimited(&(ctx_dev)->pdev->dev,			\
			     "daemon message rejected: " fmt, ##__VA_ARGS__)

static const struct v4l2_event daedalus_eos_event = {
	.type = V4L2_EVENT_EOS,
};

static const struct v4l2_event daedalus_src_change_event = {
	.type = V4L2_EVENT_SOURCE_CHANGE,
	.u.src_change.changes = V4L2_EVENT_SRC_CH_RESOLUTION,
};

void daedalus_sessions_init(struct daedalus_dev *dev)
{
	mutex_init(&dev->sessions_lock);
	spin_lock_init(&dev->ids_lock);
	idr_init(&dev->sessions);
	INIT_DELAYED_WORK(&dev->watchdog, daedalus_watchdog_work);
}

void daedalus_sessions_cleanup(struct daedalus_dev *dev)
{
	cancel_delayed_work_sync(&dev->watchdog);
	idr_destroy(&dev->sessions);
	mutex_destroy(&dev->sessions_lock);
}

static struct daedalus_qstate *daedalus_qs(struct daedalus_ctx *ctx,
					   unsigned int queue)
{
	return queue == DAEDALUS_QUEUE_OUTPUT ? &ctx->out : &ctx->cap;
}

static struct v4l2_m2m_queue_ctx *daedalus_qctx(struct daedalus_ctx *ctx,
						unsigned int queue)
{
	return queue == DAEDALUS_QUEUE_OUTPUT ?
		&ctx->fh.m2m_ctx->out_q_ctx : &ctx->fh.m2m_ctx->cap_q_ctx;
}

static void daedalus_msg_init(struct daedalus_ctx *ctx,
			      struct daedalus_msg *msg, u32 type)
{
	memset(msg, 0, sizeof(*msg));
	msg->type = type;
	msg->session = ctx->session;
}

static int daedalus_send(struct daedalus_ctx *ctx, const struct daedalus_msg *msg)
{
	int ret = daedalus_chan_send(&ctx->dev->chan, ctx->conn, msg);

	if (ret == -ENOSPC)
		dev_warn_ratelimited(&ctx->dev->pdev->dev,
				     "session %u: daemon channel full\n",
				     ctx->session);
	return ret;
}

/* <0: the message is from an older epoch (stale), 0: current, >0: bogus */
static int daedalus_epoch_cmp(u32 msg_epoch, u32 cur)
{
	return (s32)(msg_epoch - cur);
}

/* The buffer @index of @queue, if the daemon owns it now. */
static struct vb2_v4l2_buffer *daedalus_find_owned(struct daedalus_ctx *ctx,
						   unsigned int queue,
						   u32 index)
{
	struct v4l2_m2m_queue_ctx *q_ctx = daedalus_qctx(ctx, queue);
	struct vb2_v4l2_buffer *found = NULL;
	struct v4l2_m2m_buffer *b;
	unsigned long flags;

	spin_lock_irqsave(&q_ctx->rdy_spinlock, flags);
	list_for_each_entry(b, &q_ctx->rdy_queue, list) {
		if (b->vb.vb2_buf.index != index)
			continue;
		if (container_of(b, struct daedalus_buf, m2m)->with_daemon)
			found = &b->vb;
		break;
	}
	spin_unlock_irqrestore(&q_ctx->rdy_spinlock, flags);
	return found;
}

/*
 * Returns every buffer of @queue the driver holds to vb2 and starts a new
 * epoch, so late replies about them are recognised as stale.
 */
void daedalus_session_take_back(struct daedalus_ctx *ctx, unsigned int queue,
				enum vb2_buffer_state state)
{
	struct v4l2_m2m_ctx *m2m_ctx = ctx->fh.m2m_ctx;
	struct daedalus_qstate *qs = daedalus_qs(ctx, queue);
	struct vb2_v4l2_buffer *vbuf;

	qs->epoch++;
	qs->owned = 0;
	if (queue == DAEDALUS_QUEUE_OUTPUT && ctx->parked_out) {
		/* the oldest first: it left the daemon before the others */
		v4l2_m2m_buf_done(ctx->parked_out, state);
		ctx->parked_out = NULL;
	}
	for (;;) {
		vbuf = queue == DAEDALUS_QUEUE_OUTPUT ?
			v4l2_m2m_src_buf_remove(m2m_ctx) :
			v4l2_m2m_dst_buf_remove(m2m_ctx);
		if (!vbuf)
			break;
		vbuf_to_dbuf(vbuf)->with_daemon = false;
		v4l2_m2m_buf_done(vbuf, state);
	}
}

/*
 * The session cannot go on (daemon gone, stalled, out of FIFO room, or it
 * said so): every buffer completes with ERROR, both queues error out (which
 * wakes blocked DQBUF and poll), and the session stays dead: -EIO.
 */
static void daedalus_session_fail(struct daedalus_ctx *ctx, bool tell_daemon)
{
	struct daedalus_msg msg;

	if (ctx->dead)
		return;
	ctx->dead = true;
	if (tell_daemon && ctx->open_sent) {
		daedalus_msg_init(ctx, &msg, DAEDALUS_K2D_SESSION_CLOSE);
		daedalus_send(ctx, &msg);
	}
	ctx->open_sent = false;

	daedalus_session_take_back(ctx, DAEDALUS_QUEUE_OUTPUT,
				   VB2_BUF_STATE_ERROR);
	daedalus_session_take_back(ctx, DAEDALUS_QUEUE_CAPTURE,
				   VB2_BUF_STATE_ERROR);
	vb2_queue_error(daedalus_vq(ctx, DAEDALUS_QUEUE_OUTPUT));
	vb2_queue_error(daedalus_vq(ctx, DAEDALUS_QUEUE_CAPTURE));
}

/* stop_streaming: take the queue's buffers back and tell the daemon */
void daedalus_session_stop(struct daedalus_ctx *ctx, unsigned int queue)
{
	struct daedalus_msg msg;

	daedalus_session_take_back(ctx, queue, VB2_BUF_STATE_ERROR);
	if (!ctx->open_sent || ctx->closing)
		return;	/* SESSION_CLOSE takes everything back anyway */

	daedalus_msg_init(ctx, &msg, queue == DAEDALUS_QUEUE_OUTPUT ?
			  DAEDALUS_K2D_FLUSH : DAEDALUS_K2D_CAPTURE_RESET);
	msg.epoch.epoch = daedalus_qs(ctx, queue)->epoch;
	if (daedalus_send(ctx, &msg))
		daedalus_session_fail(ctx, true);
}

/* Gives the session a new id, never used before. Called under ctx->lock. */
static int daedalus_session_new_id(struct daedalus_ctx *ctx)
{
	struct daedalus_dev *dev = ctx->dev;
	int ret;
	u32 id;

	idr_preload(GFP_KERNEL);
	spin_lock(&dev->ids_lock);
	if (ctx->session)
		idr_remove(&dev->sessions, ctx->session);
	ctx->session = 0;
	if (dev->last_session >= INT_MAX) {
		ret = -ENOSPC;
	} else {
		id = dev->last_session + 1;
		ret = idr_alloc(&dev->sessions, ctx, id, id + 1, GFP_NOWAIT);
		if (ret >= 0) {
			dev->last_session = id;
			ctx->session = id;
		}
	}
	spin_unlock(&dev->ids_lock);
	idr_preload_end();
	return ret < 0 ? ret : 0;
}

/*
 * OUTPUT start_streaming: make sure the daemon has a session for the
 * current coded format.
 */
int daedalus_session_start(struct daedalus_ctx *ctx)
{
	struct daedalus_dev *dev = ctx->dev;
	struct daedalus_msg msg;
	u64 conn;
	int ret;

	if (!daedalus_chan_current(&dev->chan, &conn)) {
		dev_info_ratelimited(&dev->pdev->dev, "no daemon connected\n");
		return -ENODEV;
	}
	if (ctx->open_sent && ctx->session_coded == ctx->out_fmt.pixelformat)
		return 0;	/* a seek: the session goes on */

	if (ctx->open_sent) {
		/* another codec: a new session, as the UAPI header says */
		daedalus_msg_init(ctx, &msg, DAEDALUS_K2D_SESSION_CLOSE);
		daedalus_send(ctx, &msg);
		ctx->open_sent = false;
	}

	ret = daedalus_session_new_id(ctx);
	if (ret)
		return ret;
	ctx->conn = conn;
	ctx->session_coded = ctx->out_fmt.pixelformat;
	ctx->stream_known = false;

	daedalus_msg_init(ctx, &msg, DAEDALUS_K2D_SESSION_OPEN);
	msg.session_open.coded_format = ctx->out_fmt.pixelformat;
	msg.session_open.width = ctx->out_fmt.width;
	msg.session_open.height = ctx->out_fmt.height;
	ret = daedalus_send(ctx, &msg);
	if (ret)
		return ret == -ENOSPC ? -EBUSY : -ENODEV;
	ctx->open_sent = true;
	ctx->last_progress = jiffies;
	return 0;
}

void daedalus_session_release(struct daedalus_ctx *ctx)
{
	struct daedalus_dev *dev = ctx->dev;
	struct daedalus_msg msg;

	/* after this no daemon reply, watchdog or disconnect can find ctx */
	mutex_lock(&dev->sessions_lock);
	spin_lock(&dev->ids_lock);
	if (ctx->session)
		idr_remove(&dev->sessions, ctx->session);
	spin_unlock(&dev->ids_lock);
	mutex_unlock(&dev->sessions_lock);

	mutex_lock(&ctx->lock);
	ctx->closing = true;
	v4l2_m2m_ctx_release(ctx->fh.m2m_ctx);
	if (ctx->open_sent) {
		daedalus_msg_init(ctx, &msg, DAEDALUS_K2D_SESSION_CLOSE);
		daedalus_send(ctx, &msg);
		ctx->open_sent = false;
	}
	mutex_unlock(&ctx->lock);
}

static void daedalus_fill_bitstream(struct daedalus_ctx *ctx,
				    struct daedalus_msg *msg,
				    struct vb2_buffer *vb)
{
	struct daedalus_k2d_bitstream *bs = &msg->bitstream;

	daedalus_msg_init(ctx, msg, DAEDALUS_K2D_BITSTREAM);
	bs->timestamp_ns = vb->timestamp;
	bs->index = vb->index;
	bs->generation = ctx->out.generation;
	bs->epoch = ctx->out.epoch;
	bs->bytesused = vb2_get_plane_payload(vb, 0);
	bs->length = vb2_plane_size(vb, 0);
	bs->mem_seq = vbuf_to_dbuf(to_vb2_v4l2_buffer(vb))->mem_seq;
}

static void daedalus_fill_capture(struct daedalus_ctx *ctx,
				  struct daedalus_msg *msg,
				  struct vb2_buffer *vb)
{
	const struct v4l2_pix_format_mplane *pix = &ctx->cap_alloc_fmt;
	struct daedalus_k2d_capture *cap = &msg->capture;
	unsigned int i;

	daedalus_msg_init(ctx, msg, DAEDALUS_K2D_CAPTURE);
	cap->index = vb->index;
	cap->generation = ctx->cap.generation;
	cap->epoch = ctx->cap.epoch;
	cap->pixelformat = pix->pixelformat;
	cap->width = pix->width;
	cap->height = pix->height;
	cap->num_planes = min_t(u32, vb->num_planes, DAEDALUS_MAX_PLANES);
	cap->mem_seq = vbuf_to_dbuf(to_vb2_v4l2_buffer(vb))->mem_seq;
	for (i = 0; i < cap->num_planes; i++) {
		cap->bytesperline[i] = pix->plane_fmt[i].bytesperline;
		cap->length[i] = vb2_plane_size(vb, i);
	}
}

#define DAEDALUS_META_FLAGS	(V4L2_BUF_FLAG_TIMECODE | V4L2_BUF_FLAG_TSTAMP_SRC_MASK)

/* buf_queue(OUTPUT): keep what the frames of this buffer must carry */
void daedalus_session_remember(struct daedalus_ctx *ctx,
			       const struct vb2_v4l2_buffer *vbuf)
{
	struct daedalus_meta *m = &ctx->meta[ctx->meta_next];

	ctx->meta_next = (ctx->meta_next + 1) % DAEDALUS_META_SLOTS;
	m->timestamp = vbuf->vb2_buf.timestamp;
	m->timecode = vbuf->timecode;
	m->flags = vbuf->flags & DAEDALUS_META_FLAGS;
	m->used = true;
}

/* The metadata of the newest OUTPUT buffer with the frame's timestamp. */
static void daedalus_copy_meta(struct daedalus_ctx *ctx,
			       struct vb2_v4l2_buffer *vbuf, u64 timestamp)
{
	unsigned int i, slot;

	vbuf->flags &= ~DAEDALUS_META_FLAGS;
	memset(&vbuf->timecode, 0, sizeof(vbuf->timecode));
	for (i = 1; i <= DAEDALUS_META_SLOTS; i++) {
		slot = (ctx->meta_next + DAEDALUS_META_SLOTS - i) %
		       DAEDALUS_META_SLOTS;
		if (ctx->meta[slot].used &&
		    ctx->meta[slot].timestamp == timestamp) {
			vbuf->flags |= ctx->meta[slot].flags;
			vbuf->timecode = ctx->meta[slot].timecode;
			return;
		}
	}
}

/* Announces every buffer of @queue the daemon has not seen yet. */
static int daedalus_push_queue(struct daedalus_ctx *ctx, unsigned int queue)
{
	struct v4l2_m2m_queue_ctx *q_ctx = daedalus_qctx(ctx, queue);
	struct daedalus_qstate *qs = daedalus_qs(ctx, queue);
	struct v4l2_m2m_buffer *b;
	struct daedalus_buf *dbuf;
	struct daedalus_msg msg;
	unsigned long flags;
	int ret = 0;

	spin_lock_irqsave(&q_ctx->rdy_spinlock, flags);
	list_for_each_entry(b, &q_ctx->rdy_queue, list) {
		dbuf = container_of(b, struct daedalus_buf, m2m);
		if (dbuf->with_daemon)
			continue;
		if (queue == DAEDALUS_QUEUE_OUTPUT)
			daedalus_fill_bitstream(ctx, &msg, &b->vb.vb2_buf);
		else
			daedalus_fill_capture(ctx, &msg, &b->vb.vb2_buf);
		ret = daedalus_send(ctx, &msg);
		if (ret)
			break;
		/* the stall clock starts when the daemon gets work */
		if (queue == DAEDALUS_QUEUE_OUTPUT && !qs->owned)
			ctx->last_progress = jiffies;
		dbuf->with_daemon = true;
		qs->owned++;
	}
	spin_unlock_irqrestore(&q_ctx->rdy_spinlock, flags);
	return ret;
}

/*
 * Sends the daemon whatever it may have now. OUTPUT buffers wait while a
 * drain runs or after it ended (until V4L2_DEC_CMD_START), so DRAIN covers
 * exactly the bitstream queued before V4L2_DEC_CMD_STOP.
 */
void daedalus_session_push(struct daedalus_ctx *ctx)
{
	struct v4l2_m2m_ctx *m2m_ctx = ctx->fh.m2m_ctx;
	int ret = 0;

	if (!ctx->open_sent || ctx->dead || ctx->closing)
		return;

	if (vb2_start_streaming_called(&m2m_ctx->out_q_ctx.q) &&
	    !m2m_ctx->is_draining && !v4l2_m2m_has_stopped(m2m_ctx))
		ret = daedalus_push_queue(ctx, DAEDALUS_QUEUE_OUTPUT);
	if (!ret && vb2_start_streaming_called(&m2m_ctx->cap_q_ctx.q))
		ret = daedalus_push_queue(ctx, DAEDALUS_QUEUE_CAPTURE);
	if (ret)
		daedalus_session_fail(ctx, true);
}

/* Gives the parked OUTPUT buffer back (CAPTURE streams now). */
void daedalus_session_unpark(struct daedalus_ctx *ctx)
{
	if (!ctx->parked_out)
		return;
	v4l2_m2m_buf_done(ctx->parked_out, ctx->parked_state);
	ctx->parked_out = NULL;
}

/*
 * The daemon is done with an OUTPUT buffer. While CAPTURE is not
 * streaming, the last such buffer stays with the driver until it does, as
 * vicodec keeps its bitstream while it waits for CAPTURE buffers: once a
 * client has dequeued every OUTPUT buffer and CAPTURE is not streaming,
 * the m2m poll reports EPOLLERR, which select() turns into "readable";
 * v4l2-ctl then gets EINVAL from CAPTURE DQBUF and stops reading CAPTURE
 * before the source change even told it to set CAPTURE up. (That order
 * needs the format to come late, with the first decoded frame: the
 * daemon's header probe normally sends it before the buffer is done.)
 * Buffers go back in the order the daemon finished them.
 */
static void daedalus_session_park(struct daedalus_ctx *ctx,
				  struct vb2_v4l2_buffer *vbuf,
				  enum vb2_buffer_state state)
{
	struct v4l2_m2m_ctx *m2m_ctx = ctx->fh.m2m_ctx;

	daedalus_session_unpark(ctx);
	if (vb2_is_streaming(&m2m_ctx->cap_q_ctx.q) ||
	    v4l2_m2m_num_src_bufs_ready(m2m_ctx)) {
		v4l2_m2m_buf_done(vbuf, state);
		return;
	}
	ctx->parked_out = vbuf;
	ctx->parked_state = state;
}

/* V4L2_DEC_CMD_STOP with both queues streaming */
int daedalus_session_drain(struct daedalus_ctx *ctx)
{
	struct daedalus_msg msg;

	if (ctx->dead || !ctx->open_sent)
		return -EIO;
	daedalus_msg_init(ctx, &msg, DAEDALUS_K2D_DRAIN);
	if (daedalus_send(ctx, &msg)) {
		daedalus_session_fail(ctx, true);
		return -EIO;
	}
	if (!ctx->out.owned)
		ctx->last_progress = jiffies;
	ctx->fh.m2m_ctx->is_draining = true;
	return 0;
}

/* ------------------------------------------------------------------ */
/* replies                                                             */
/* ------------------------------------------------------------------ */

static bool daedalus_all_zero(const void *p, size_t size)
{
	return !memchr_inv(p, 0, size);
}

/* Checks that need no session state. */
static int daedalus_check_msg(struct daedalus_dev *dev,
			      const struct daedalus_msg *msg)
{
	const struct daedalus_d2k_frame_done *fd = &msg->frame_done;
	const struct daedalus_d2k_format *f = &msg->format;
	unsigned int i;

	if (!daedalus_all_zero(msg->reserved, sizeof(msg->reserved))) {
		daedalus_reject(dev, "reserved header fields set\n");
		return -EINVAL;
	}

	switch (msg->type) {
	case DAEDALUS_D2K_BITSTREAM_DONE:
		if (msg->bitstream_done.flags & ~DAEDALUS_BITSTREAM_F_ERROR ||
		    !daedalus_all_zero(msg->bitstream_done.reserved,
				       sizeof(msg->bitstream_done.reserved))) {
			daedalus_reject(dev, "BITSTREAM_DONE flags/reserved\n");
			return -EINVAL;
		}
		return 0;

	case DAEDALUS_D2K_FRAME_DONE:
		if (fd->flags & ~DAEDALUS_FRAME_F_ALL || fd->reserved ||
		    ((fd->flags & DAEDALUS_FRAME_F_DRAIN_END) &&
		     (fd->flags & DAEDALUS_FRAME_F_CHANGE_END))) {
			daedalus_reject(dev, "FRAME_DONE flags/reserved\n");
			return -EINVAL;
		}
		if (!fd->num_planes || fd->num_planes > DAEDALUS_MAX_PLANES) {
			daedalus_reject(dev, "FRAME_DONE num_planes %u\n",
					fd->num_planes);
			return -EINVAL;
		}
		for (i = fd->num_planes; i < DAEDALUS_MAX_PLANES; i++) {
			if (fd->bytesused[i]) {
				daedalus_reject(dev, "FRAME_DONE bytesused beyond num_planes\n");
				return -EINVAL;
			}
		}
		return 0;

	case DAEDALUS_D2K_FORMAT:
		if (!daedalus_all_zero(f->reserved, sizeof(f->reserved)) ||
		    !((f->pixelformat == V4L2_PIX_FMT_NV12 && f->bit_depth == 8) ||
		      (f->pixelformat == V4L2_PIX_FMT_P010 && f->bit_depth == 10)) ||
		    f->width < DAEDALUS_MIN_SIZE || f->width > DAEDALUS_MAX_SIZE ||
		    f->height < DAEDALUS_MIN_SIZE || f->height > DAEDALUS_MAX_SIZE ||
		    !f->visible_width || !f->visible_height ||
		    f->visible_left > f->width ||
		    f->visible_width > f->width - f->visible_left ||
		    f->visible_top > f->height ||
		    f->visible_height > f->height - f->visible_top ||
		    f->colorspace > V4L2_COLORSPACE_DCI_P3 ||
		    f->xfer_func > V4L2_XFER_FUNC_SMPTE2084 ||
		    f->ycbcr_enc > V4L2_YCBCR_ENC_SMPTE240M ||
		    f->quantization > V4L2_QUANTIZATION_LIM_RANGE ||
		    !f->min_capture_buffers ||
		    f->min_capture_buffers > DAEDALUS_MAX_MIN_BUFS) {
			daedalus_reject(dev, "FORMAT out of range\n");
			return -EINVAL;
		}
		return 0;

	case DAEDALUS_D2K_SESSION_ERROR:
		if (!daedalus_all_zero(msg->session_error.reserved,
				       sizeof(msg->session_error.reserved))) {
			daedalus_reject(dev, "SESSION_ERROR reserved\n");
			return -EINVAL;
		}
		return 0;

	default:
		daedalus_reject(dev, "unknown type %u\n", msg->type);
		return -EINVAL;
	}
}

static int daedalus_on_bitstream_done(struct daedalus_ctx *ctx,
				      const struct daedalus_d2k_bitstream_done *bd)
{
	struct daedalus_dev *dev = ctx->dev;
	struct vb2_v4l2_buffer *vbuf;
	int cmp = daedalus_epoch_cmp(bd->epoch, ctx->out.epoch);

	if (cmp < 0)
		return 0;	/* taken back meanwhile: a legitimate race */
	if (cmp > 0) {
		daedalus_reject(dev, "session %u: OUTPUT epoch %u from the future\n",
				ctx->session, bd->epoch);
		return -EINVAL;
	}
	vbuf = daedalus_find_owned(ctx, DAEDALUS_QUEUE_OUTPUT, bd->index);
	if (!vbuf) {
		daedalus_reject(dev, "session %u: OUTPUT %u not the daemon's\n",
				ctx->session, bd->index);
		return -EINVAL;
	}

	v4l2_m2m_src_buf_remove_by_idx(ctx->fh.m2m_ctx, bd->index);
	vbuf_to_dbuf(vbuf)->with_daemon = false;
	ctx->out.owned--;
	vbuf->sequence = ctx->out.sequence++;
	daedalus_session_park(ctx, vbuf, bd->flags & DAEDALUS_BITSTREAM_F_ERROR ?
			      VB2_BUF_STATE_ERROR : VB2_BUF_STATE_DONE);
	return 0;
}

static int daedalus_on_frame_done(struct daedalus_ctx *ctx,
				  const struct daedalus_d2k_frame_done *fd)
{
	struct daedalus_dev *dev = ctx->dev;
	struct v4l2_m2m_ctx *m2m_ctx = ctx->fh.m2m_ctx;
	enum vb2_buffer_state state;
	struct vb2_v4l2_buffer *vbuf;
	struct vb2_buffer *vb;
	unsigned int i;
	int cmp = daedalus_epoch_cmp(fd->epoch, ctx->cap.epoch);

	if (cmp < 0)
		return 0;
	if (cmp > 0) {
		daedalus_reject(dev, "session %u: CAPTURE epoch %u from the future\n",
				ctx->session, fd->epoch);
		return -EINVAL;
	}
	vbuf = daedalus_find_owned(ctx, DAEDALUS_QUEUE_CAPTURE, fd->index);
	if (!vbuf) {
		daedalus_reject(dev, "session %u: CAPTURE %u not the daemon's\n",
				ctx->session, fd->index);
		return -EINVAL;
	}
	vb = &vbuf->vb2_buf;
	if (fd->num_planes != vb->num_planes) {
		daedalus_reject(dev, "session %u: CAPTURE %u has %u planes, not %u\n",
				ctx->session, fd->index, vb->num_planes,
				fd->num_planes);
		return -EINVAL;
	}
	for (i = 0; i < vb->num_planes; i++) {
		if (fd->bytesused[i] > vb2_plane_size(vb, i)) {
			daedalus_reject(dev, "session %u: bytesused %u > plane size %lu\n",
					ctx->session, fd->bytesused[i],
					vb2_plane_size(vb, i));
			return -EINVAL;
		}
	}
	if ((fd->flags & DAEDALUS_FRAME_F_DRAIN_END) && !m2m_ctx->is_draining) {
		daedalus_reject(dev, "session %u: DRAIN_END while not draining\n",
				ctx->session);
		return -EINVAL;
	}
	if ((fd->flags & DAEDALUS_FRAME_F_CHANGE_END) &&
	    !ctx->change_end_allowed) {
		daedalus_reject(dev, "session %u: CHANGE_END without a new FORMAT\n",
				ctx->session);
		return -EINVAL;
	}

	v4l2_m2m_dst_buf_remove_by_idx(m2m_ctx, fd->index);
	vbuf_to_dbuf(vbuf)->with_daemon = false;
	ctx->cap.owned--;

	for (i = 0; i < vb->num_planes; i++)
		vb2_set_plane_payload(vb, i, fd->bytesused[i]);
	vb->timestamp = fd->timestamp_ns;
	daedalus_copy_meta(ctx, vbuf, fd->timestamp_ns);
	vbuf->field = V4L2_FIELD_NONE;
	vbuf->flags &= ~(V4L2_BUF_FLAG_KEYFRAME | V4L2_BUF_FLAG_PFRAME |
			 V4L2_BUF_FLAG_BFRAME | V4L2_BUF_FLAG_LAST);
	if (fd->flags & DAEDALUS_FRAME_F_KEYFRAME)
		vbuf->flags |= V4L2_BUF_FLAG_KEYFRAME;
	vbuf->sequence = ctx->cap.sequence++;
	state = fd->flags & DAEDALUS_FRAME_F_ERROR ?
		VB2_BUF_STATE_ERROR : VB2_BUF_STATE_DONE;

	if (fd->flags & DAEDALUS_FRAME_F_DRAIN_END) {
		v4l2_event_queue_fh(&ctx->fh, &daedalus_eos_event);
		if (state == VB2_BUF_STATE_DONE) {
			v4l2_m2m_last_buffer_done(m2m_ctx, vbuf);
		} else {
			/* the helper knows only DONE; same steps with ERROR */
			vbuf->flags |= V4L2_BUF_FLAG_LAST;
			v4l2_m2m_buf_done(vbuf, state);
			v4l2_m2m_mark_stopped(m2m_ctx);
		}
		return 0;
	}
	if (fd->flags & DAEDALUS_FRAME_F_CHANGE_END) {
		vbuf->flags |= V4L2_BUF_FLAG_LAST;	/* then -EPIPE */
		ctx->change_end_sent = true;
	}
	v4l2_m2m_buf_done(vbuf, state);
	return 0;
}

static bool daedalus_format_equal(const struct daedalus_d2k_format *a,
				  const struct daedalus_d2k_format *b)
{
	return a->pixelformat == b->pixelformat &&
	       a->width == b->width && a->height == b->height &&
	       a->visible_left == b->visible_left &&
	       a->visible_top == b->visible_top &&
	       a->visible_width == b->visible_width &&
	       a->visible_height == b->visible_height &&
	       a->bit_depth == b->bit_depth &&
	       a->colorspace == b->colorspace &&
	       a->xfer_func == b->xfer_func &&
	       a->ycbcr_enc == b->ycbcr_enc &&
	       a->quantization == b->quantization &&
	       a->min_capture_buffers == b->min_capture_buffers;
}

static int daedalus_on_format(struct daedalus_ctx *ctx,
			      const struct daedalus_d2k_format *f)
{
	struct v4l2_pix_format_mplane *cap = &ctx->cap_fmt;
	int cmp = daedalus_epoch_cmp(f->epoch, ctx->out.epoch);
	bool changed;
	u32 pixelformat;

	if (cmp < 0) {
		/*
		 * From before a seek: not the stream's format any more, but the
		 * daemon may follow it with CHANGE_END before it reads the
		 * FLUSH. Refusing that would leave it waiting for a
		 * CAPTURE_RESET nobody sends; a spurious LAST only costs the
		 * client a CAPTURE restart.
		 */
		ctx->change_end_allowed = true;
		return 0;
	}
	if (cmp > 0) {
		daedalus_reject(ctx->dev, "session %u: FORMAT epoch %u from the future\n",
				ctx->session, f->epoch);
		return -EINVAL;
	}

	changed = !ctx->stream_known || !daedalus_format_equal(&ctx->stream, f);
	ctx->stream = *f;
	ctx->stream_known = true;
	ctx->change_end_allowed = true;

	/* keep the client's pixel format where the bit depth allows it */
	pixelformat = cap->pixelformat;
	if (f->bit_depth == 10 ? pixelformat != V4L2_PIX_FMT_P010 :
				 pixelformat == V4L2_PIX_FMT_P010)
		pixelformat = f->pixelformat;
	daedalus_fill_cap_fmt(cap, pixelformat, f->width, f->height);
	cap->colorspace = f->colorspace ?: ctx->out_fmt.colorspace;
	cap->xfer_func = f->xfer_func ?: ctx->out_fmt.xfer_func;
	cap->ycbcr_enc = f->ycbcr_enc ?: ctx->out_fmt.ycbcr_enc;
	cap->quantization = f->quantization ?: ctx->out_fmt.quantization;

	v4l2_ctrl_s_ctrl(ctx->min_cap_ctrl, f->min_capture_buffers);
	if (changed)
		v4l2_event_queue_fh(&ctx->fh, &daedalus_src_change_event);
	return 0;
}

static int daedalus_on_reply(struct daedalus_ctx *ctx,
			     const struct daedalus_msg *msg)
{
	int ret;

	switch (msg->type) {
	case DAEDALUS_D2K_BITSTREAM_DONE:
		ret = daedalus_on_bitstream_done(ctx, &msg->bitstream_done);
		break;
	case DAEDALUS_D2K_FRAME_DONE:
		ret = daedalus_on_frame_done(ctx, &msg->frame_done);
		break;
	case DAEDALUS_D2K_FORMAT:
		ret = daedalus_on_format(ctx, &msg->format);
		break;
	default: /* DAEDALUS_D2K_SESSION_ERROR, checked before */
		dev_warn(&ctx->dev->pdev->dev, "session %u: daemon failed it (%d)\n",
			 ctx->session, msg->session_error.error);
		daedalus_session_fail(ctx, true);
		return 0;
	}
	if (!ret)
		ctx->last_progress = jiffies;
	return ret;
}

/*
 * One daemon->kernel message. Unknown session ids are -EINVAL; ids of
 * sessions that ended (or died) are a legitimate race and dropped, as are
 * replies from an older epoch.
 */
int daedalus_session_reply(struct daedalus_dev *dev,
			   const struct daedalus_msg *msg)
{
	struct daedalus_ctx *ctx = NULL;
	u32 last;
	int ret;

	ret = daedalus_check_msg(dev, msg);
	if (ret)
		return ret;

	mutex_lock(&dev->sessions_lock);
	spin_lock(&dev->ids_lock);
	if (msg->session)
		ctx = idr_find(&dev->sessions, msg->session);
	last = dev->last_session;
	spin_unlock(&dev->ids_lock);

	if (!ctx) {
		if (!msg->session || msg->session > last) {
			daedalus_reject(dev, "unknown session %u\n", msg->session);
			ret = -EINVAL;
		}
		goto out;
	}

	mutex_lock(&ctx->lock);
	if (ctx->session == msg->session && ctx->open_sent && !ctx->dead)
		ret = daedalus_on_reply(ctx, msg);
	mutex_unlock(&ctx->lock);
out:
	mutex_unlock(&dev->sessions_lock);
	return ret;
}

/* ------------------------------------------------------------------ */
/* DAEDALUS_IOC_GET_BUF_FD                                             */
/* ------------------------------------------------------------------ */

static int daedalus_export(struct daedalus_ctx *ctx, struct vb2_queue *q,
			   struct vb2_buffer *vb, struct daedalus_buf_fd *req)
{
	/* the daemon reads bitstream and writes frames, nothing else */
	unsigned int flags = O_CLOEXEC |
		(req->queue == DAEDALUS_QUEUE_OUTPUT ? O_RDONLY : O_RDWR);
	struct dma_buf *dbuf;
	int fd, ret;

	if (q->memory == VB2_MEMORY_MMAP) {
		ret = vb2_core_expbuf(q, &fd, q->type, vb, req->plane, flags);
		if (ret)
			return ret;
	} else if (q->memory == VB2_MEMORY_DMABUF) {
		/*
		 * The client's own dma-buf; its access mode was fixed by the
		 * exporter, only O_CLOEXEC applies here.
		 */
		dbuf = vb->planes[req->plane].dbuf;
		if (!dbuf)
			return -EINVAL;
		get_dma_buf(dbuf);
		fd = dma_buf_fd(dbuf, O_CLOEXEC);
		if (fd < 0) {
			dma_buf_put(dbuf);
			return fd;
		}
	} else {
		return -EINVAL;
	}
	req->fd = fd;
	req->length = vb2_plane_size(vb, req->plane);
	return 0;
}

/*
 * -EINVAL: malformed (queue, index, plane, never-issued session id);
 * -ESTALE: the request was valid once but the buffer is no longer the
 * daemon's (session closed, buffers reallocated, taken back) or no longer
 * has the memory the daemon asked about (mem_seq).
 */
int daedalus_session_get_buf_fd(struct daedalus_dev *dev,
				struct daedalus_buf_fd *req)
{
	struct daedalus_ctx *ctx = NULL;
	struct vb2_buffer *vb;
	struct vb2_queue *q;
	u32 last;
	int ret;

	if (req->queue != DAEDALUS_QUEUE_OUTPUT &&
	    req->queue != DAEDALUS_QUEUE_CAPTURE)
		return -EINVAL;

	mutex_lock(&dev->sessions_lock);
	spin_lock(&dev->ids_lock);
	if (req->session)
		ctx = idr_find(&dev->sessions, req->session);
	last = dev->last_session;
	spin_unlock(&dev->ids_lock);
	if (!ctx) {
		ret = !req->session || req->session > last ? -EINVAL : -ESTALE;
		goto out;
	}

	mutex_lock(&ctx->lock);
	q = daedalus_vq(ctx, req->queue);
	vb = vb2_get_buffer(q, req->index);
	if (ctx->session != req->session || !ctx->open_sent || ctx->dead ||
	    req->generation != daedalus_qs(ctx, req->queue)->generation)
		ret = -ESTALE;
	else if (!vb || req->plane >= vb->num_planes)
		ret = -EINVAL;
	else if (!daedalus_find_owned(ctx, req->queue, req->index))
		ret = -ESTALE;
	else if (req->mem_seq &&
		 req->mem_seq != vbuf_to_dbuf(to_vb2_v4l2_buffer(vb))->mem_seq)
		ret = -ESTALE;	/* requeued with other memory meanwhile */
	else
		ret = daedalus_export(ctx, q, vb, req);
	mutex_unlock(&ctx->lock);
out:
	mutex_unlock(&dev->sessions_lock);
	return ret;
}

/* ------------------------------------------------------------------ */
/* daemon death and stalls                                             */
/* ------------------------------------------------------------------ */

/*
 * For walks over all sessions under dev->sessions_lock: the first session
 * with an id >= *id, returned with its ctx->lock held. The idr may change
 * under ids_lock meanwhile (a session taking a new id), which at worst
 * visits a session twice.
 */
static struct daedalus_ctx *daedalus_next_session(struct daedalus_dev *dev,
						  int *id)
{
	struct daedalus_ctx *ctx;

	spin_lock(&dev->ids_lock);
	ctx = idr_get_next(&dev->sessions, id);
	spin_unlock(&dev->ids_lock);
	if (ctx) {
		mutex_lock(&ctx->lock);
		(*id)++;
	}
	return ctx;
}

/* The daemon closed the channel: its sessions die, new ones may come. */
void daedalus_sessions_disconnect(struct daedalus_dev *dev, u64 conn)
{
	struct daedalus_ctx *ctx;
	int id = 0;

	mutex_lock(&dev->sessions_lock);
	while ((ctx = daedalus_next_session(dev, &id))) {
		if (ctx->open_sent && ctx->conn == conn)
			daedalus_session_fail(ctx, false);
		mutex_unlock(&ctx->lock);
	}
	mutex_unlock(&dev->sessions_lock);
}

/*
 * Stalled: the daemon holds bitstream (or a drain) and could answer, i.e.
 * it has CAPTURE buffers to write into or has not even sent the FORMAT yet.
 * Holding bitstream while the client gives no CAPTURE buffers is the
 * client's doing, not a stall.
 */
static bool daedalus_stalled(struct daedalus_ctx *ctx, unsigned long timeout)
{
	if (!ctx->open_sent || ctx->dead)
		return false;
	if (!ctx->out.owned && !ctx->fh.m2m_ctx->is_draining)
		return false;
	if (!ctx->cap.owned && ctx->stream_known)
		return false;
	return time_after_eq(jiffies, ctx->last_progress + timeout);
}

static void daedalus_watchdog_check(struct daedalus_dev *dev,
				    unsigned long timeout)
{
	struct daedalus_ctx *ctx;
	int id = 0;

	mutex_lock(&dev->sessions_lock);
	while ((ctx = daedalus_next_session(dev, &id))) {
		if (daedalus_stalled(ctx, timeout)) {
			dev_warn(&dev->pdev->dev, "session %u: daemon silent for %u ms, failing the session\n",
				 ctx->session,
				 jiffies_to_msecs(jiffies - ctx->last_progress));
			daedalus_session_fail(ctx, true);
		}
		mutex_unlock(&ctx->lock);
	}
	mutex_unlock(&dev->sessions_lock);
}

void daedalus_watchdog_work(struct work_struct *work)
{
	struct daedalus_dev *dev = container_of(to_delayed_work(work),
						struct daedalus_dev, watchdog);
	unsigned int timeout_ms = READ_ONCE(daedalus_timeout_ms);
	unsigned long timeout;
	u64 conn;

	if (!daedalus_chan_current(&dev->chan, &conn))
		return;
	if (timeout_ms) {
		timeout = msecs_to_jiffies(timeout_ms);
		daedalus_watchdog_check(dev, timeout);
	}
	/* a quarter of the timeout: a stall is caught within 1.25 timeouts */
	schedule_delayed_work(&dev->watchdog,
			      msecs_to_jiffies(timeout_ms ?
					       max(timeout_ms / 4, 10U) : 1000));
}
