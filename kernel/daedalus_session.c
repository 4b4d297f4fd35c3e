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
#include <linux/slab.h>
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
	spin_lock_init(&dev->ids_lock);
	idr_init(&dev->sessions);
	/* the first id handed out (a test parameter exercises the wrap) */
	idr_set_cursor(&dev->sessions, daedalus_first_session_id);
	INIT_DELAYED_WORK(&dev->watchdog, daedalus_watchdog_work);
}

void daedalus_sessions_cleanup(struct daedalus_dev *dev)
{
	cancel_delayed_work_sync(&dev->watchdog);
	idr_destroy(&dev->sessions);
}

static void daedalus_push_work(struct work_struct *work)
{
	struct daedalus_ctx *ctx = container_of(work, struct daedalus_ctx,
						outbox.push_work);

	mutex_lock(&ctx->lock);
	daedalus_session_push_all(ctx);
	mutex_unlock(&ctx->lock);
}

/* open(): the session part of a new file handle, holding its reference */
int daedalus_session_init(struct daedalus_ctx *ctx)
{
	struct daedalus_outbox *ob = &ctx->outbox;

	ob->msgs = kcalloc(DAEDALUS_OUTBOX_MSGS, sizeof(*ob->msgs),
			   GFP_KERNEL);
	if (!ob->msgs)
		return -ENOMEM;
	INIT_LIST_HEAD(&ob->node);
	INIT_WORK(&ob->push_work, daedalus_push_work);
	init_waitqueue_head(&ctx->released_wait);
	kref_init(&ctx->ref);
	mutex_init(&ctx->lock);
	ctx->state = DAEDALUS_SESSION_IDLE;
	return 0;
}

static void daedalus_session_free(struct kref *ref)
{
	struct daedalus_ctx *ctx = container_of(ref, struct daedalus_ctx, ref);

	mutex_destroy(&ctx->lock);
	kfree(ctx->outbox.msgs);
	kfree(ctx);
}

void daedalus_session_put(struct daedalus_ctx *ctx)
{
	kref_put(&ctx->ref, daedalus_session_free);
}

/*
 * The session @id with a reference, or NULL. @issued tells whether the id
 * may have been handed out (a reply for it is a legitimate race then).
 */
static struct daedalus_ctx *daedalus_session_find(struct daedalus_dev *dev,
						  u32 id, bool *issued)
{
	struct daedalus_ctx *ctx = NULL;

	spin_lock(&dev->ids_lock);
	if (id && id <= INT_MAX)
		ctx = idr_find(&dev->sessions, id);
	/* in the idr, the file handle's reference is still there */
	if (ctx)
		kref_get(&ctx->ref);
	*issued = id && id <= INT_MAX &&
		  (dev->ids_wrapped || id <= dev->last_session);
	spin_unlock(&dev->ids_lock);
	return ctx;
}

/*
 * For walks over all sessions: the first session with an id >= *id, with a
 * reference; *id becomes the next id to look at (-1 after INT_MAX). The
 * idr may change meanwhile; a session that takes a new id may be visited
 * twice, which the walks allow.
 */
static struct daedalus_ctx *daedalus_next_session(struct daedalus_dev *dev,
						  int *id)
{
	struct daedalus_ctx *ctx;

	if (*id < 0)
		return NULL;	/* the walk passed INT_MAX */
	spin_lock(&dev->ids_lock);
	ctx = idr_get_next(&dev->sessions, id);
	if (ctx) {
		kref_get(&ctx->ref);
		*id = *id == INT_MAX ? -1 : *id + 1;
	}
	spin_unlock(&dev->ids_lock);
	return ctx;
}

/* Takes ctx->lock; time a daemon write() waits here is not the daemon's. */
static void daedalus_lock_for_daemon(struct daedalus_ctx *ctx)
{
	struct daedalus_chan *chan = &ctx->dev->chan;
	unsigned long t0;

	if (mutex_trylock(&ctx->lock))
		return;
	atomic_inc(&chan->writers_blocked);
	t0 = jiffies;
	mutex_lock(&ctx->lock);
	atomic_long_add(jiffies - t0, &chan->blocked_jiffies);
	atomic_dec(&chan->writers_blocked);
}

/* The daemon answered something that moved the session on. */
static void daedalus_progress(struct daedalus_ctx *ctx)
{
	ctx->last_progress = jiffies;
	ctx->progress_blocked = atomic_long_read(&ctx->dev->chan.blocked_jiffies);
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

/* Returns every buffer of @queue the driver holds to vb2. */
static void daedalus_return_buffers(struct daedalus_ctx *ctx,
				    unsigned int queue,
				    enum vb2_buffer_state state)
{
	struct v4l2_m2m_ctx *m2m_ctx = ctx->fh.m2m_ctx;
	struct daedalus_qstate *qs = daedalus_qs(ctx, queue);
	struct vb2_v4l2_buffer *vbuf;

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
 * Returns every buffer of @queue the driver holds to vb2 and starts a new
 * epoch, so late replies about them are recognised as stale.
 */
void daedalus_session_take_back(struct daedalus_ctx *ctx, unsigned int queue,
				enum vb2_buffer_state state)
{
	daedalus_qs(ctx, queue)->epoch++;
	daedalus_return_buffers(ctx, queue, state);
}

/* Drops the session's id: late replies for it are dropped from now on. */
static void daedalus_session_drop_id(struct daedalus_ctx *ctx)
{
	struct daedalus_dev *dev = ctx->dev;

	if (!ctx->session)
		return;
	spin_lock(&dev->ids_lock);
	idr_remove(&dev->sessions, ctx->session);
	dev->num_sessions--;
	spin_unlock(&dev->ids_lock);
	ctx->session = 0;
}

/*
 * A new id for the session: cyclic from 1 to INT_MAX, so an id comes back
 * only after 2^31 - 1 others. -EBUSY past max_sessions.
 */
static int daedalus_session_new_id(struct daedalus_ctx *ctx)
{
	struct daedalus_dev *dev = ctx->dev;
	unsigned int max = READ_ONCE(daedalus_max_sessions);
	int ret;

	idr_preload(GFP_KERNEL);
	spin_lock(&dev->ids_lock);
	if (max && dev->num_sessions >= max) {
		ret = -EBUSY;
	} else {
		ret = idr_alloc_cyclic(&dev->sessions, ctx, 1, 0, GFP_NOWAIT);
		if (ret > 0) {
			if ((u32)ret <= dev->last_session)
				dev->ids_wrapped = true;
			dev->last_session = ret;
			dev->num_sessions++;
			ctx->session = ret;
		}
	}
	spin_unlock(&dev->ids_lock);
	idr_preload_end();

	if (ret == -EBUSY)
		dev_warn_ratelimited(&dev->pdev->dev,
				     "session limit reached (max_sessions=%u): STREAMON refused\n",
				     max);
	return ret < 0 ? ret : 0;
}

/* The daemon's side of the session ends: SESSION_CLOSE, the id goes. */
static void daedalus_session_end(struct daedalus_ctx *ctx)
{
	daedalus_chan_close(ctx);
	daedalus_session_drop_id(ctx);
}

/*
 * The session cannot go on (the daemon died, stalled or said so): every
 * buffer completes with ERROR, both queues error out (which wakes blocked
 * DQBUF and poll), and STREAMON gets -EIO until the client stopped both
 * queues (dev-decoder.rst, recovery from a fatal error). Only called from
 * the daemon's side (replies, watchdog, disconnect), never inside a
 * client's ioctl: STREAMON must not see its buffers completed.
 */
static void daedalus_session_fail(struct daedalus_ctx *ctx)
{
	if (ctx->state != DAEDALUS_SESSION_OPEN)
		return;
	daedalus_session_end(ctx);
	WRITE_ONCE(ctx->state, DAEDALUS_SESSION_FAILED);
	/* a STREAMOFF waiting for RELEASED waits no more */
	wake_up_all(&ctx->released_wait);

	daedalus_session_take_back(ctx, DAEDALUS_QUEUE_OUTPUT,
				   VB2_BUF_STATE_ERROR);
	daedalus_session_take_back(ctx, DAEDALUS_QUEUE_CAPTURE,
				   VB2_BUF_STATE_ERROR);
	vb2_queue_error(daedalus_vq(ctx, DAEDALUS_QUEUE_OUTPUT));
	vb2_queue_error(daedalus_vq(ctx, DAEDALUS_QUEUE_CAPTURE));
}

/*
 * stop_streaming: take the queue's buffers back and tell the daemon,
 * unless daedalus_session_take_back_sync() already did both but the
 * returning (which vb2 wants from here).
 */
void daedalus_session_stop(struct daedalus_ctx *ctx, unsigned int queue)
{
	struct daedalus_qstate *qs = daedalus_qs(ctx, queue);
	struct daedalus_msg msg;

	if (qs->told) {
		qs->told = false;
		daedalus_return_buffers(ctx, queue, VB2_BUF_STATE_ERROR);
		return;
	}
	daedalus_session_take_back(ctx, queue, VB2_BUF_STATE_ERROR);
	if (ctx->state != DAEDALUS_SESSION_OPEN)
		return;

	daedalus_msg_init(ctx, &msg, queue == DAEDALUS_QUEUE_OUTPUT ?
			  DAEDALUS_K2D_FLUSH : DAEDALUS_K2D_CAPTURE_RESET);
	msg.epoch.epoch = daedalus_qs(ctx, queue)->epoch;
	/* a control message always fits; -ENODEV: the disconnect fails us */
	daedalus_chan_send(ctx, &msg);
}

static bool daedalus_released(struct daedalus_ctx *ctx, unsigned int queue,
			      u32 epoch)
{
	return READ_ONCE(ctx->state) != DAEDALUS_SESSION_OPEN ||
	       daedalus_epoch_cmp(READ_ONCE(daedalus_qs(ctx, queue)->released),
				  epoch) >= 0;
}

/*
 * VIDIOC_STREAMOFF and close() of a streaming queue, before vb2 gives its
 * buffers back: with a daemon that confirms take-backs, start the new
 * epoch, tell the daemon and wait until it answers RELEASED, so no buffer
 * is touched after STREAMOFF returns (UAPI header, "Synchronous
 * take-back"). Bounded by daemon_timeout_ms; a daemon that does not answer
 * in time fails the session. Called with ctx->lock held; the wait drops
 * it, as vb2 drops q->lock while DQBUF waits, so the daemon's replies and
 * the watchdog can run. Nothing of the queue goes to the daemon meanwhile
 * (qs->told), and daedalus_session_stop() then only returns the buffers.
 */
void daedalus_session_take_back_sync(struct daedalus_ctx *ctx,
				     unsigned int queue)
{
	struct daedalus_qstate *qs = daedalus_qs(ctx, queue);
	unsigned int ms = READ_ONCE(daedalus_timeout_ms) ?: 2000;
	struct daedalus_msg msg;
	long left;
	u32 epoch;

	if (ctx->state != DAEDALUS_SESSION_OPEN ||
	    !vb2_is_streaming(daedalus_vq(ctx, queue)) ||
	    !daedalus_chan_release_ack(&ctx->dev->chan, ctx->conn))
		return;

	epoch = ++qs->epoch;
	qs->told = true;
	daedalus_msg_init(ctx, &msg, queue == DAEDALUS_QUEUE_OUTPUT ?
			  DAEDALUS_K2D_FLUSH : DAEDALUS_K2D_CAPTURE_RESET);
	msg.epoch.epoch = epoch;
	if (daedalus_chan_send(ctx, &msg))
		return;	/* the daemon is gone; its disconnect fails us */

	mutex_unlock(&ctx->lock);
	left = wait_event_timeout(ctx->released_wait,
				  daedalus_released(ctx, queue, epoch),
				  msecs_to_jiffies(ms));
	mutex_lock(&ctx->lock);
	if (!left && ctx->state == DAEDALUS_SESSION_OPEN) {
		dev_warn(&ctx->dev->pdev->dev,
			 "session %u: daemon did not release its %s buffers within %u ms, failing the session\n",
			 ctx->session,
			 queue == DAEDALUS_QUEUE_OUTPUT ? "OUTPUT" : "CAPTURE",
			 ms);
		daedalus_session_fail(ctx);
	}
}

/*
 * V4L2_DEC_CMD_START after a resolution change's LAST buffer
 * (dev-decoder.rst, "Dynamic Resolution Change", step 6): the CAPTURE
 * buffers stay queued, the daemon lets go of them (CAPTURE_RESET, and
 * RELEASED if it confirms take-backs) and gets them again in a new epoch
 * with the new format. -EINVAL if a queued buffer cannot hold it.
 */
int daedalus_session_resume_capture(struct daedalus_ctx *ctx)
{
	struct v4l2_m2m_queue_ctx *q_ctx = daedalus_qctx(ctx, DAEDALUS_QUEUE_CAPTURE);
	struct v4l2_m2m_buffer *b;
	struct daedalus_msg msg;
	unsigned long flags;

	if (ctx->state != DAEDALUS_SESSION_OPEN)
		return -EIO;
	if (!daedalus_queued_capture_fits(ctx))
		return -EINVAL;

	if (daedalus_chan_release_ack(&ctx->dev->chan, ctx->conn)) {
		daedalus_session_take_back_sync(ctx, DAEDALUS_QUEUE_CAPTURE);
		ctx->cap.told = false;
	} else {
		ctx->cap.epoch++;
		daedalus_msg_init(ctx, &msg, DAEDALUS_K2D_CAPTURE_RESET);
		msg.epoch.epoch = ctx->cap.epoch;
		daedalus_chan_send(ctx, &msg);
	}
	if (ctx->state != DAEDALUS_SESSION_OPEN)
		return -EIO;	/* it did not let go in time */

	/* the daemon has none of them now: announce them again */
	spin_lock_irqsave(&q_ctx->rdy_spinlock, flags);
	list_for_each_entry(b, &q_ctx->rdy_queue, list)
		container_of(b, struct daedalus_buf, m2m)->with_daemon = false;
	spin_unlock_irqrestore(&q_ctx->rdy_spinlock, flags);
	ctx->cap.owned = 0;
	ctx->cap_stream_fmt = ctx->cap_fmt;
	ctx->change_end_sent = false;
	ctx->change_end_allowed = false;
	vb2_clear_last_buffer_dequeued(daedalus_vq(ctx, DAEDALUS_QUEUE_CAPTURE));
	daedalus_session_push(ctx, DAEDALUS_QUEUE_CAPTURE);
	return 0;
}

/* Both queues are stopped: a failed session may start again. */
void daedalus_session_stopped(struct daedalus_ctx *ctx)
{
	if (ctx->state == DAEDALUS_SESSION_FAILED)
		ctx->state = DAEDALUS_SESSION_IDLE;
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

	if (ctx->state == DAEDALUS_SESSION_FAILED)
		return -EIO;
	if (!daedalus_chan_current(&dev->chan, &conn)) {
		dev_info_ratelimited(&dev->pdev->dev, "no daemon connected\n");
		return -ENODEV;
	}
	if (ctx->state == DAEDALUS_SESSION_OPEN &&
	    ctx->session_coded == ctx->out_fmt.pixelformat)
		return 0;	/* a seek: the session goes on */

	/* another codec: a new session, as the UAPI header says */
	if (ctx->state == DAEDALUS_SESSION_OPEN)
		daedalus_session_end(ctx);
	ctx->state = DAEDALUS_SESSION_IDLE;

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
	ret = daedalus_chan_send(ctx, &msg);
	if (ret) {
		/* the daemon went away meanwhile */
		daedalus_session_drop_id(ctx);
		return -ENODEV;
	}
	ctx->state = DAEDALUS_SESSION_OPEN;
	daedalus_progress(ctx);
	return 0;
}

/*
 * release(): the daemon's side ends first (no reply can find the session
 * afterwards), then vb2 takes every buffer back. The caller drops the file
 * handle's reference.
 */
void daedalus_session_release(struct daedalus_ctx *ctx)
{
	mutex_lock(&ctx->lock);
	/* no ioctl can run any more; the daemon lets go first */
	daedalus_session_take_back_sync(ctx, DAEDALUS_QUEUE_OUTPUT);
	daedalus_session_take_back_sync(ctx, DAEDALUS_QUEUE_CAPTURE);
	if (ctx->state == DAEDALUS_SESSION_OPEN)
		daedalus_session_end(ctx);
	WRITE_ONCE(ctx->state, DAEDALUS_SESSION_RELEASED);
	v4l2_m2m_ctx_release(ctx->fh.m2m_ctx);
	mutex_unlock(&ctx->lock);
	/* the outbox left the channel in daedalus_chan_close(): no requeue */
	cancel_work_sync(&ctx->outbox.push_work);
}

static void daedalus_fill_bitstream(struct daedalus_ctx *ctx,
				    struct daedalus_msg *msg,
				    struct vb2_buffer *vb)
{
	struct daedalus_k2d_bitstream *bs = &msg->bitstream;

	daedalus_msg_init(ctx, msg, DAEDALUS_K2D_BITSTREAM);
	bs->timestamp_ns = vb->timestamp;
	bs->index = vb->index;
	bs->generation = vbuf_to_dbuf(to_vb2_v4l2_buffer(vb))->generation;
	bs->epoch = ctx->out.epoch;
	bs->bytesused = vb2_get_plane_payload(vb, 0);
	/* vb2 checked it is below bytesused (when there is a payload) */
	bs->data_offset = vb->planes[0].data_offset;
	bs->length = vb2_plane_size(vb, 0);
	bs->mem_seq = vbuf_to_dbuf(to_vb2_v4l2_buffer(vb))->mem_seq;
}

static void daedalus_fill_capture(struct daedalus_ctx *ctx,
				  struct daedalus_msg *msg,
				  struct vb2_buffer *vb)
{
	const struct v4l2_pix_format_mplane *pix = &ctx->cap_stream_fmt;
	struct daedalus_k2d_capture *cap = &msg->capture;
	unsigned int i;

	daedalus_msg_init(ctx, msg, DAEDALUS_K2D_CAPTURE);
	cap->index = vb->index;
	cap->generation = vbuf_to_dbuf(to_vb2_v4l2_buffer(vb))->generation;
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

/*
 * Announces every buffer of @queue the daemon has not seen yet, until the
 * session's outbox is full: the rest waits for the push work, which runs
 * when the daemon has read (back-pressure, never a failure).
 */
static void daedalus_push_queue(struct daedalus_ctx *ctx, unsigned int queue)
{
	struct v4l2_m2m_queue_ctx *q_ctx = daedalus_qctx(ctx, queue);
	struct daedalus_qstate *qs = daedalus_qs(ctx, queue);
	struct v4l2_m2m_buffer *b;
	struct daedalus_buf *dbuf;
	struct daedalus_msg msg;
	unsigned long flags;

	spin_lock_irqsave(&q_ctx->rdy_spinlock, flags);
	list_for_each_entry(b, &q_ctx->rdy_queue, list) {
		dbuf = container_of(b, struct daedalus_buf, m2m);
		if (dbuf->with_daemon)
			continue;
		if (queue == DAEDALUS_QUEUE_OUTPUT)
			daedalus_fill_bitstream(ctx, &msg, &b->vb.vb2_buf);
		else
			daedalus_fill_capture(ctx, &msg, &b->vb.vb2_buf);
		if (daedalus_chan_send(ctx, &msg))
			break;
		/* the stall clock starts when the daemon gets work */
		if (queue == DAEDALUS_QUEUE_OUTPUT && !qs->owned)
			daedalus_progress(ctx);
		dbuf->with_daemon = true;
		qs->owned++;
	}
	spin_unlock_irqrestore(&q_ctx->rdy_spinlock, flags);
}

/*
 * Sends the daemon what @queue may give it now. Only a queue whose
 * start_streaming ran sends: buf_queue() during STREAMON (vb2 handing over
 * pre-queued buffers) only queues, and start_streaming sends. OUTPUT
 * buffers wait while a drain runs or after it ended (until
 * V4L2_DEC_CMD_START), so DRAIN covers exactly the bitstream queued before
 * V4L2_DEC_CMD_STOP.
 */
void daedalus_session_push(struct daedalus_ctx *ctx, unsigned int queue)
{
	struct v4l2_m2m_ctx *m2m_ctx = ctx->fh.m2m_ctx;

	if (ctx->state != DAEDALUS_SESSION_OPEN ||
	    !vb2_start_streaming_called(daedalus_vq(ctx, queue)) ||
	    daedalus_qs(ctx, queue)->told)
		return;
	if (queue == DAEDALUS_QUEUE_OUTPUT &&
	    (m2m_ctx->is_draining || v4l2_m2m_has_stopped(m2m_ctx)))
		return;
	daedalus_push_queue(ctx, queue);
}

void daedalus_session_push_all(struct daedalus_ctx *ctx)
{
	daedalus_session_push(ctx, DAEDALUS_QUEUE_OUTPUT);
	daedalus_session_push(ctx, DAEDALUS_QUEUE_CAPTURE);
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
	struct vb2_queue *q = vbuf->vb2_buf.vb2_queue;

	daedalus_session_unpark(ctx);
	/*
	 * Before the format is known, never the client's last free buffer
	 * (all the others are queued): with one OUTPUT buffer, or headers
	 * spread over several small buffers of a continuous bytestream, it
	 * needs this one back to send what the daemon needs before it can
	 * say the format. Once it is known, the source change tells the
	 * client to start CAPTURE, which gives the parked buffer back.
	 */
	if (vb2_is_streaming(&m2m_ctx->cap_q_ctx.q) ||
	    v4l2_m2m_num_src_bufs_ready(m2m_ctx) ||
	    (!ctx->stream_known &&
	     vb2_get_num_buffers(q) <= q->queued_count)) {
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

	if (ctx->state != DAEDALUS_SESSION_OPEN)
		return -EIO;
	daedalus_msg_init(ctx, &msg, DAEDALUS_K2D_DRAIN);
	if (daedalus_chan_send(ctx, &msg))
		return -EIO;	/* the daemon is gone */
	if (!ctx->out.owned)
		daedalus_progress(ctx);
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

	case DAEDALUS_D2K_ALIVE:
		if (msg->session || !daedalus_all_zero(msg->raw, sizeof(msg->raw))) {
			daedalus_reject(dev, "ALIVE session/body\n");
			return -EINVAL;
		}
		return 0;

	case DAEDALUS_D2K_RELEASED:
		if ((msg->released.queue != DAEDALUS_QUEUE_OUTPUT &&
		     msg->released.queue != DAEDALUS_QUEUE_CAPTURE) ||
		    !daedalus_all_zero(msg->released.reserved,
				       sizeof(msg->released.reserved))) {
			daedalus_reject(dev, "RELEASED queue/reserved\n");
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
	return 1;
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
		return 1;
	}
	if (fd->flags & DAEDALUS_FRAME_F_CHANGE_END) {
		vbuf->flags |= V4L2_BUF_FLAG_LAST;	/* then -EPIPE */
		ctx->change_end_sent = true;
	}
	v4l2_m2m_buf_done(vbuf, state);
	return 1;
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
	return changed;
}

static int daedalus_on_released(struct daedalus_ctx *ctx,
				const struct daedalus_d2k_released *rel)
{
	struct daedalus_qstate *qs = daedalus_qs(ctx, rel->queue);

	if (daedalus_epoch_cmp(rel->epoch, qs->epoch) > 0) {
		daedalus_reject(ctx->dev, "session %u: RELEASED epoch %u from the future\n",
				ctx->session, rel->epoch);
		return -EINVAL;
	}
	if (daedalus_epoch_cmp(rel->epoch, qs->released) <= 0)
		return 0;	/* an older take-back, answered late */
	WRITE_ONCE(qs->released, rel->epoch);
	wake_up_all(&ctx->released_wait);
	return 1;
}

/* <0: invalid, 0: valid but nothing moved (stale, repeated), 1: progress */
static int daedalus_on_reply(struct daedalus_ctx *ctx,
			     const struct daedalus_msg *msg)
{
	switch (msg->type) {
	case DAEDALUS_D2K_BITSTREAM_DONE:
		return daedalus_on_bitstream_done(ctx, &msg->bitstream_done);
	case DAEDALUS_D2K_FRAME_DONE:
		return daedalus_on_frame_done(ctx, &msg->frame_done);
	case DAEDALUS_D2K_FORMAT:
		return daedalus_on_format(ctx, &msg->format);
	case DAEDALUS_D2K_RELEASED:
		return daedalus_on_released(ctx, &msg->released);
	default: /* DAEDALUS_D2K_SESSION_ERROR, checked before */
		dev_warn(&ctx->dev->pdev->dev, "session %u: daemon failed it (%d)\n",
			 ctx->session, msg->session_error.error);
		daedalus_session_fail(ctx);
		return 0;
	}
}

/*
 * One daemon->kernel message. Never-issued session ids are -EINVAL; ids of
 * sessions that ended (or died) are a legitimate race and dropped, as are
 * replies from an older epoch.
 */
int daedalus_session_reply(struct daedalus_dev *dev,
			   const struct daedalus_msg *msg)
{
	struct daedalus_ctx *ctx;
	bool issued;
	int ret;

	daedalus_chan_trace(dev, "d2k", msg);
	ret = daedalus_check_msg(dev, msg);
	if (ret || msg->type == DAEDALUS_D2K_ALIVE)
		return ret;	/* ALIVE: the write itself was the news */

	ctx = daedalus_session_find(dev, msg->session, &issued);
	if (!ctx) {
		if (issued)
			return 0;
		daedalus_reject(dev, "unknown session %u\n", msg->session);
		return -EINVAL;
	}

	daedalus_lock_for_daemon(ctx);
	if (ctx->session == msg->session &&
	    ctx->state == DAEDALUS_SESSION_OPEN) {
		ret = daedalus_on_reply(ctx, msg);
		if (ret > 0) {
			daedalus_progress(ctx);
			ret = 0;
		}
	}
	mutex_unlock(&ctx->lock);
	daedalus_session_put(ctx);
	return ret;
}

/* ------------------------------------------------------------------ */
/* DAEDALUS_IOC_GET_BUF_FD                                             */
/* ------------------------------------------------------------------ */

static struct dma_buf *daedalus_export(struct vb2_queue *q,
				       struct vb2_buffer *vb,
				       const struct daedalus_buf_fd *req)
{
	/* the daemon reads bitstream and writes frames, nothing else */
	unsigned long flags = O_CLOEXEC |
		(req->queue == DAEDALUS_QUEUE_OUTPUT ? O_RDONLY : O_RDWR);
	struct dma_buf *dbuf;

	if (q->memory == VB2_MEMORY_MMAP) {
		/*
		 * vb2_core_expbuf() without its fd: the channel installs
		 * the fd only once the daemon can learn its number.
		 */
		if (!q->mem_ops->get_dmabuf)
			return ERR_PTR(-EINVAL);
		dbuf = q->mem_ops->get_dmabuf(vb, vb->planes[req->plane].mem_priv,
					      flags);
		return IS_ERR_OR_NULL(dbuf) ? ERR_PTR(-EINVAL) : dbuf;
	}
	if (q->memory == VB2_MEMORY_DMABUF) {
		/* the client's own dma-buf; the exporter fixed its access */
		dbuf = vb->planes[req->plane].dbuf;
		if (!dbuf)
			return ERR_PTR(-EINVAL);
		get_dma_buf(dbuf);
		return dbuf;
	}
	return ERR_PTR(-EINVAL);
}

/*
 * The dma-buf of a buffer the daemon owns, with a reference; the caller
 * makes the fd. -EINVAL: malformed (queue, index, plane, never-issued
 * session id); -ESTALE: the request was valid once but the buffer is no
 * longer the daemon's (session closed, buffers reallocated, taken back)
 * or no longer has the memory the daemon asked about (mem_seq).
 */
struct dma_buf *daedalus_session_get_dmabuf(struct daedalus_dev *dev,
					    struct daedalus_buf_fd *req)
{
	struct daedalus_ctx *ctx;
	struct dma_buf *dbuf;
	struct vb2_buffer *vb;
	struct vb2_queue *q;
	bool issued;

	if (req->queue != DAEDALUS_QUEUE_OUTPUT &&
	    req->queue != DAEDALUS_QUEUE_CAPTURE)
		return ERR_PTR(-EINVAL);

	ctx = daedalus_session_find(dev, req->session, &issued);
	if (!ctx)
		return ERR_PTR(issued ? -ESTALE : -EINVAL);

	daedalus_lock_for_daemon(ctx);
	if (ctx->session != req->session ||
	    ctx->state != DAEDALUS_SESSION_OPEN) {
		dbuf = ERR_PTR(-ESTALE);
		goto out;
	}
	q = daedalus_vq(ctx, req->queue);
	vb = vb2_get_buffer(q, req->index);
	if (!vb)	/* freed since (a generation ago), or never there */
		dbuf = ERR_PTR(req->generation ==
			       daedalus_qs(ctx, req->queue)->generation ?
			       -EINVAL : -ESTALE);
	else if (req->generation !=
		 vbuf_to_dbuf(to_vb2_v4l2_buffer(vb))->generation)
		dbuf = ERR_PTR(-ESTALE);	/* reallocated meanwhile */
	else if (req->plane >= vb->num_planes)
		dbuf = ERR_PTR(-EINVAL);
	else if (!daedalus_find_owned(ctx, req->queue, req->index))
		dbuf = ERR_PTR(-ESTALE);
	else if (req->mem_seq &&
		 req->mem_seq != vbuf_to_dbuf(to_vb2_v4l2_buffer(vb))->mem_seq)
		dbuf = ERR_PTR(-ESTALE);	/* requeued with other memory */
	else
		dbuf = daedalus_export(q, vb, req);
	if (!IS_ERR(dbuf))
		req->length = vb2_plane_size(vb, req->plane);
out:
	mutex_unlock(&ctx->lock);
	daedalus_session_put(ctx);
	return dbuf;
}

/* ------------------------------------------------------------------ */
/* daemon death and stalls                                             */
/* ------------------------------------------------------------------ */

/* The daemon closed the channel: its sessions die, new ones may come. */
void daedalus_sessions_disconnect(struct daedalus_dev *dev, u64 conn)
{
	struct daedalus_ctx *ctx;
	int id = 0;

	while ((ctx = daedalus_next_session(dev, &id))) {
		mutex_lock(&ctx->lock);
		if (ctx->state == DAEDALUS_SESSION_OPEN && ctx->conn == conn)
			daedalus_session_fail(ctx);
		mutex_unlock(&ctx->lock);
		daedalus_session_put(ctx);
	}
}

/*
 * Stalled: the daemon holds bitstream (or a drain) and could answer, i.e.
 * it has CAPTURE buffers to write into or has not even sent the FORMAT yet.
 * Holding bitstream while the client gives no CAPTURE buffers is the
 * client's doing, not a stall; so is the wait for the client's CAPTURE
 * restart after a resolution change's LAST buffer. Time the daemon's
 * write() spent waiting for a session lock does not count.
 */
static bool daedalus_stalled(struct daedalus_ctx *ctx, unsigned long timeout)
{
	long waited;

	if (ctx->state != DAEDALUS_SESSION_OPEN)
		return false;
	if (!ctx->out.owned && !ctx->fh.m2m_ctx->is_draining)
		return false;
	if (!ctx->cap.owned && ctx->stream_known)
		return false;
	if (ctx->change_end_sent)
		return false;
	waited = atomic_long_read(&ctx->dev->chan.blocked_jiffies) -
		 ctx->progress_blocked;
	return time_after_eq(jiffies, ctx->last_progress + timeout + waited);
}

/*
 * A daemon that sends ALIVE (UAPI header, "Liveness") is judged as a
 * whole: when it has been silent for the timeout, every session it owes
 * something fails; a slow decode is not a stall.
 */
static bool daedalus_owes(struct daedalus_ctx *ctx)
{
	return ctx->state == DAEDALUS_SESSION_OPEN &&
	       (ctx->out.owned || ctx->fh.m2m_ctx->is_draining);
}

static void daedalus_watchdog_check(struct daedalus_dev *dev,
				    unsigned long timeout)
{
	struct daedalus_ctx *ctx;
	unsigned int silent_ms;
	bool silent, alive;
	int id = 0;
	u64 conn;

	/*
	 * ALIVE comes every DAEDALUS_ALIVE_INTERVAL_MS at best: never judge
	 * the daemon by less than four intervals, whatever the parameter.
	 */
	silent = daedalus_chan_silent(&dev->chan,
				      max(timeout, msecs_to_jiffies(4 *
						DAEDALUS_ALIVE_INTERVAL_MS)),
				      &silent_ms);
	alive = !silent && READ_ONCE(dev->chan.alive);
	if (alive)
		return;
	if (silent) {
		while ((ctx = daedalus_next_session(dev, &id))) {
			mutex_lock(&ctx->lock);
			if (daedalus_owes(ctx) &&
			    daedalus_chan_current(&dev->chan, &conn) &&
			    ctx->conn == conn) {
				dev_warn(&dev->pdev->dev, "session %u: daemon silent for %u ms, failing the session\n",
					 ctx->session, silent_ms);
				daedalus_session_fail(ctx);
			}
			mutex_unlock(&ctx->lock);
			daedalus_session_put(ctx);
		}
		return;
	}
	while ((ctx = daedalus_next_session(dev, &id))) {
		mutex_lock(&ctx->lock);
		/* a daemon write() waiting for a lock is not a silent daemon */
		if (!atomic_read(&dev->chan.writers_blocked) &&
		    daedalus_stalled(ctx, timeout)) {
			dev_warn(&dev->pdev->dev, "session %u: daemon silent for %u ms, failing the session\n",
				 ctx->session,
				 jiffies_to_msecs(jiffies - ctx->last_progress));
			daedalus_session_fail(ctx);
		}
		mutex_unlock(&ctx->lock);
		daedalus_session_put(ctx);
	}
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
