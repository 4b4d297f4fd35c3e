/* SPDX-License-Identifier: GPL-2.0 */
/*
 * daedalus-v4l2: a stateful V4L2 M2M decoder whose decoding runs in a
 * userspace daemon. Shared definitions of the module's parts.
 *
 * Lifetime: a struct daedalus_ctx is reference counted (ctx->ref). The
 * file handle holds one reference until release(); daemon replies,
 * GET_BUF_FD, the watchdog and the channel's push work take one while they
 * use a ctx found outside its file handle, so no global lock is held across
 * per-session work and sessions never wait for each other. release() marks
 * the session RELEASED under ctx->lock; whoever holds a reference checks
 * that before touching the queues.
 *
 * Locking (outermost first):
 *   ctx->lock           mutex: q->lock of both vb2 queues, m2m_ctx->q_lock
 *                       and every field of struct daedalus_ctx.
 *   dev->ids_lock       spinlock: the id -> ctx idr, dev->num_sessions.
 *   chan->lock          spinlock: the connection, every session's outbox
 *                       and the list of outboxes with unread messages.
 *                       Taken with interrupts off: it nests inside the m2m
 *                       ready-list spinlock, whose lock class all mem2mem
 *                       drivers share (some take it from interrupts).
 */
#ifndef DAEDALUS_H
#define DAEDALUS_H

#include <linux/idr.h>
#include <linux/kref.h>
#include <linux/kfifo.h>
#include <linux/miscdevice.h>
#include <linux/mutex.h>
#include <linux/platform_device.h>
#include <linux/spinlock.h>
#include <linux/wait.h>
#include <linux/workqueue.h>
#include <media/media-device.h>
#include <media/v4l2-ctrls.h>
#include <media/v4l2-device.h>
#include <media/v4l2-fh.h>
#include <media/v4l2-mem2mem.h>
#include <media/videobuf2-v4l2.h>

#include <linux/daedalus_v4l2.h>

#define DAEDALUS_NAME		"daedalus_v4l2"
#define DAEDALUS_CARD		"daedalus-v4l2"
#define DAEDALUS_CHAN_NAME	"daedalus-v4l2"

/*
 * 6.12 has no stateful AV1 fourcc; this is the one the media tree merged
 * (V4L2_PIX_FMT_AV1, 'AV01', in videodev2.h since early 2026) and Chromium
 * uses for AV1 OBU streams. The daemon announces the same value.
 */
#ifndef V4L2_PIX_FMT_AV1
#define V4L2_PIX_FMT_AV1	v4l2_fourcc('A', 'V', '0', '1')
#endif

#define DAEDALUS_MIN_SIZE	16
#define DAEDALUS_MAX_SIZE	8192
#define DAEDALUS_MAX_MIN_BUFS	32

/*
 * Flow control (see the UAPI header): every session has its own outbox of
 * unread kernel->daemon messages. Buffer messages may fill it up to
 * DAEDALUS_OUTBOX_MSGS - DAEDALUS_OUTBOX_CONTROL; beyond that they wait in
 * the driver (back-pressure) and go out when the daemon has read some.
 * Control messages (OPEN, FLUSH, CAPTURE_RESET, DRAIN) replace an unread
 * one of the same type, so at most DAEDALUS_OUTBOX_CONTROL of them are ever
 * unread and they always fit. SESSION_CLOSE outlives the file handle: it
 * waits in the channel's close list.
 */
#define DAEDALUS_OUTBOX_MSGS	64
#define DAEDALUS_OUTBOX_CONTROL	4
/* messages one read() may return */
#define DAEDALUS_READ_MSGS	64

struct daedalus_outbox {
	struct list_head node;		/* in chan->ready while count > 0 */
	unsigned int head;
	unsigned int count;
	bool blocked;			/* a buffer message waits for room */
	struct daedalus_msg *msgs;	/* DAEDALUS_OUTBOX_MSGS, a ring */
	struct work_struct push_work;	/* sends what waited, on room */
};

struct daedalus_chan {
	struct miscdevice misc;
	struct mutex read_lock;		/* one reader; guards @bounce */
	spinlock_t lock;		/* the fields below and all outboxes */
	wait_queue_head_t wait;
	struct list_head ready;		/* outboxes with unread messages */
	struct list_head closes;	/* unread SESSION_CLOSE messages */
	struct daedalus_msg *bounce;	/* DAEDALUS_READ_MSGS, for read() */
	atomic_t writers_blocked;	/* write()s waiting for a ctx->lock */
	atomic_long_t blocked_jiffies;	/* total time they waited */
	bool busy;			/* the device is open */
	bool connected;			/* HELLO done */
	bool release_ack;		/* HELLO had DAEDALUS_HELLO_F_RELEASE_ACK */
	bool alive;			/* HELLO had DAEDALUS_HELLO_F_ALIVE */
	unsigned long last_heard;	/* jiffies of the daemon's last write */
	u64 conn;			/* ++ at each HELLO; sessions remember it */
	u32 coded_formats[DAEDALUS_MAX_CODED_FORMATS];
	unsigned int num_coded_formats;
	u32 continuous_formats;		/* bit i: coded_formats[i] any chunking */
};

struct daedalus_dev {
	struct platform_device *pdev;
	struct v4l2_device v4l2_dev;
	struct video_device vdev;
	struct media_device mdev;
	struct v4l2_m2m_dev *m2m_dev;
	const struct vb2_mem_ops *mem_ops;

	spinlock_t ids_lock;		/* the fields up to ids_wrapped */
	struct idr sessions;		/* session id -> struct daedalus_ctx */
	unsigned int num_sessions;	/* ids in @sessions */
	/*
	 * Ids are handed out cyclically from 1 to INT_MAX: the last one so
	 * far, and whether the cycle wrapped (then any id may be an old one).
	 */
	u32 last_session;
	bool ids_wrapped;

	struct delayed_work watchdog;	/* daemon stall detection */
	struct daedalus_chan chan;
};

/* Driver-private vb2 buffer: the m2m ready-list entry plus ownership. */
struct daedalus_buf {
	struct v4l2_m2m_buffer m2m;	/* first: vb2 allocates buf_struct_size */
	bool with_daemon;		/* announced to the daemon, not answered */
	u32 generation;			/* the queue's generation at allocation */
	u32 mem_seq;			/* ++ when vb2 attaches other memory */
};

/*
 * OUTPUT metadata a frame must carry (what v4l2_m2m_buf_copy_metadata()
 * copies for paired buffers). Frames come back by timestamp, long after
 * their bitstream buffer went back to the client, so the last
 * DAEDALUS_META_SLOTS OUTPUT buffers are remembered by timestamp: enough
 * for reordering and frame threading delays.
 */
#define DAEDALUS_META_SLOTS	64

struct daedalus_meta {
	u64 timestamp;
	struct v4l2_timecode timecode;
	u32 flags;			/* TIMECODE and TSTAMP_SRC bits */
	bool used;
};

/* Per-queue bookkeeping shared with the daemon (see the UAPI header). */
struct daedalus_qstate {
	u32 epoch;			/* ++ at every take-back */
	u32 generation;			/* ++ at every REQBUFS/CREATE_BUFS */
	u32 sequence;			/* v4l2_buffer.sequence of the next done */
	unsigned int owned;		/* buffers the daemon holds */
	/*
	 * Synchronous take-back (UAPI header): the newest epoch the daemon
	 * confirmed with RELEASED, and whether the current epoch's FLUSH or
	 * CAPTURE_RESET already went out ahead of stop_streaming (nothing of
	 * this queue is sent to the daemon meanwhile).
	 */
	u32 released;
	bool told;
};

/*
 * A file handle's session with the daemon:
 *   IDLE      no session: nothing streamed yet, or both queues stopped
 *             after a failure (dev-decoder.rst: recovery by STREAMOFF of
 *             both queues and Initialization again)
 *   OPEN      SESSION_OPEN sent; buffers flow
 *   FAILED    the daemon died, stalled or gave up: buffers complete with
 *             ERROR, STREAMON gets -EIO until both queues are stopped
 *   RELEASED  the file handle is closed; only the memory is left
 * IDLE -> OPEN (OUTPUT STREAMON) -> FAILED -> IDLE (both queues stopped);
 * OPEN -> OPEN with a new id is a codec switch (SESSION_CLOSE, then OPEN);
 * any state -> RELEASED.
 */
enum daedalus_session_state {
	DAEDALUS_SESSION_IDLE,
	DAEDALUS_SESSION_OPEN,
	DAEDALUS_SESSION_FAILED,
	DAEDALUS_SESSION_RELEASED,
};

struct daedalus_ctx {
	struct v4l2_fh fh;
	struct daedalus_dev *dev;
	struct kref ref;		/* see "Lifetime" at the top */
	struct mutex lock;		/* vb2 q->lock and all of ctx */
	struct v4l2_ctrl_handler hdl;
	struct v4l2_ctrl *min_cap_ctrl;

	enum daedalus_session_state state;
	u32 session;			/* id in dev->sessions, 0 = none */
	u64 conn;			/* daemon connection of the session */
	u32 session_coded;		/* coded format of the open session */
	unsigned long last_progress;	/* jiffies of the daemon's last reply */
	long progress_blocked;		/* chan->blocked_jiffies then */
	struct daedalus_outbox outbox;	/* under chan->lock */
	wait_queue_head_t released_wait;	/* RELEASED or a failure */

	struct daedalus_qstate out;
	struct daedalus_qstate cap;

	struct v4l2_pix_format_mplane out_fmt;
	struct v4l2_pix_format_mplane cap_fmt;		/* G/S_FMT(CAPTURE) */
	/*
	 * The frame layout CAPTURE messages carry: G/S_FMT(CAPTURE) as it was
	 * at CAPTURE STREAMON (or the START that resumed after a resolution
	 * change); queued buffers must hold it.
	 */
	struct v4l2_pix_format_mplane cap_stream_fmt;

	struct daedalus_meta meta[DAEDALUS_META_SLOTS];
	unsigned int meta_next;		/* slot the next OUTPUT buffer takes */

	bool stream_known;		/* the daemon sent a FORMAT */
	struct daedalus_d2k_format stream;
	bool change_end_allowed;	/* FORMAT since the last CAPTURE streamon */
	bool change_end_sent;		/* CHANGE_END since the last CAPTURE streamon */
	/*
	 * Start a drain at the next CAPTURE streamon: STOP came while only
	 * OUTPUT streamed, or a resolution change restarted CAPTURE mid-drain.
	 */
	bool drain_at_streamon;

	/*
	 * The newest OUTPUT buffer the daemon is done with, not yet given
	 * back because CAPTURE is not streaming (see daedalus_session_park()).
	 */
	struct vb2_v4l2_buffer *parked_out;
	enum vb2_buffer_state parked_state;
};

static inline struct daedalus_ctx *fh_to_ctx(struct v4l2_fh *fh)
{
	return container_of(fh, struct daedalus_ctx, fh);
}

static inline struct daedalus_buf *vbuf_to_dbuf(struct vb2_v4l2_buffer *vbuf)
{
	return container_of(vbuf, struct daedalus_buf, m2m.vb);
}

static inline struct vb2_queue *daedalus_vq(struct daedalus_ctx *ctx,
					    unsigned int queue)
{
	return queue == DAEDALUS_QUEUE_OUTPUT ?
		&ctx->fh.m2m_ctx->out_q_ctx.q : &ctx->fh.m2m_ctx->cap_q_ctx.q;
}

/* module parameters (daedalus_drv.c) */
extern unsigned int daedalus_timeout_ms;
extern unsigned int daedalus_max_sessions;
extern unsigned int daedalus_first_session_id;

/* daedalus_video.c */
int daedalus_video_register(struct daedalus_dev *dev);
void daedalus_video_unregister(struct daedalus_dev *dev);
void daedalus_fill_cap_fmt(struct v4l2_pix_format_mplane *pix, u32 pixelformat,
			   u32 width, u32 height);
bool daedalus_coded_format_known(u32 fourcc);

/* daedalus_chan.c */
int daedalus_chan_register(struct daedalus_dev *dev);
void daedalus_chan_unregister(struct daedalus_dev *dev);
int daedalus_chan_send(struct daedalus_ctx *ctx, const struct daedalus_msg *msg);
void daedalus_chan_close(struct daedalus_ctx *ctx);
void daedalus_chan_trace(struct daedalus_dev *dev, const char *dir,
			 const struct daedalus_msg *msg);
bool daedalus_chan_current(struct daedalus_chan *chan, u64 *conn);
bool daedalus_chan_release_ack(struct daedalus_chan *chan, u64 conn);
bool daedalus_chan_silent(struct daedalus_chan *chan, unsigned long timeout,
			  unsigned int *silent_ms);
bool daedalus_chan_continuous(struct daedalus_chan *chan, u32 fourcc);
unsigned int daedalus_chan_formats(struct daedalus_chan *chan,
				   u32 formats[DAEDALUS_MAX_CODED_FORMATS]);

/* daedalus_session.c */
void daedalus_sessions_init(struct daedalus_dev *dev);
void daedalus_sessions_cleanup(struct daedalus_dev *dev);
int daedalus_session_init(struct daedalus_ctx *ctx);
void daedalus_session_put(struct daedalus_ctx *ctx);
int daedalus_session_start(struct daedalus_ctx *ctx);
void daedalus_session_release(struct daedalus_ctx *ctx);
void daedalus_session_push(struct daedalus_ctx *ctx, unsigned int queue);
void daedalus_session_push_all(struct daedalus_ctx *ctx);
void daedalus_session_stopped(struct daedalus_ctx *ctx);
void daedalus_session_remember(struct daedalus_ctx *ctx,
			       const struct vb2_v4l2_buffer *vbuf);
void daedalus_session_take_back(struct daedalus_ctx *ctx, unsigned int queue,
				enum vb2_buffer_state state);
void daedalus_session_stop(struct daedalus_ctx *ctx, unsigned int queue);
void daedalus_session_take_back_sync(struct daedalus_ctx *ctx,
				     unsigned int queue);
int daedalus_session_resume_capture(struct daedalus_ctx *ctx);
bool daedalus_queued_capture_fits(struct daedalus_ctx *ctx);
int daedalus_session_drain(struct daedalus_ctx *ctx);
void daedalus_session_unpark(struct daedalus_ctx *ctx);
int daedalus_session_reply(struct daedalus_dev *dev,
			   const struct daedalus_msg *msg);
struct dma_buf *daedalus_session_get_dmabuf(struct daedalus_dev *dev,
					    struct daedalus_buf_fd *req);
void daedalus_sessions_disconnect(struct daedalus_dev *dev, u64 conn);
void daedalus_watchdog_work(struct work_struct *work);

#endif /* DAEDALUS_H */
