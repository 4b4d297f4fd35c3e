/* SPDX-License-Identifier: GPL-2.0 */
/*
 * daedalus-v4l2: a stateful V4L2 M2M decoder whose decoding runs in a
 * userspace daemon. Shared definitions of the module's parts.
 *
 * Locking (outermost first):
 *   dev->sessions_lock  mutex: held while a session found in the table is
 *                       used from outside its file handle (daemon replies,
 *                       GET_BUF_FD, watchdog, daemon disconnect); release()
 *                       takes it to remove its session, so a ctx found under
 *                       it cannot be freed.
 *   ctx->lock           mutex: q->lock of both vb2 queues, m2m_ctx->q_lock
 *                       and every field of struct daedalus_ctx.
 *   dev->ids_lock       spinlock: the id -> ctx idr and dev->last_session.
 *                       Taken under ctx->lock when a session gets its id.
 *   chan->lock          spinlock: the kernel->daemon FIFO and connection.
 *                       Taken with interrupts off: it nests inside the m2m
 *                       ready-list spinlock, whose lock class all mem2mem
 *                       drivers share (some take it from interrupts).
 */
#ifndef DAEDALUS_H
#define DAEDALUS_H

#include <linux/idr.h>
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
 * 6.12 has no stateful AV1 fourcc; this is the one Chromium and later
 * kernels use for AV1 OBU streams. The daemon announces the same value.
 */
#ifndef V4L2_PIX_FMT_AV1
#define V4L2_PIX_FMT_AV1	v4l2_fourcc('A', 'V', '0', '1')
#endif

#define DAEDALUS_MIN_SIZE	16
#define DAEDALUS_MAX_SIZE	8192
#define DAEDALUS_MAX_MIN_BUFS	32

/* Kernel->daemon messages the FIFO holds; a power of two (kfifo). */
#define DAEDALUS_FIFO_MSGS	2048

struct daedalus_chan {
	struct miscdevice misc;
	struct mutex read_lock;		/* the kfifo has a single reader */
	spinlock_t lock;		/* FIFO writers and the fields below */
	wait_queue_head_t wait;
	DECLARE_KFIFO_PTR(fifo, struct daedalus_msg);
	bool busy;			/* the device is open */
	bool connected;			/* HELLO done */
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

	struct mutex sessions_lock;	/* see the top of this file */
	spinlock_t ids_lock;		/* sessions, last_session */
	struct idr sessions;		/* session id -> struct daedalus_ctx */
	u32 last_session;		/* highest id handed out so far */

	struct delayed_work watchdog;	/* daemon stall detection */
	struct daedalus_chan chan;
};

/* Driver-private vb2 buffer: the m2m ready-list entry plus ownership. */
struct daedalus_buf {
	struct v4l2_m2m_buffer m2m;	/* first: vb2 allocates buf_struct_size */
	bool with_daemon;		/* announced to the daemon, not answered */
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
	u32 generation;			/* ++ at every (re)allocation */
	u32 sequence;			/* v4l2_buffer.sequence of the next done */
	unsigned int owned;		/* buffers the daemon holds */
};

struct daedalus_ctx {
	struct v4l2_fh fh;
	struct daedalus_dev *dev;
	struct mutex lock;		/* vb2 q->lock and all of ctx */
	struct v4l2_ctrl_handler hdl;
	struct v4l2_ctrl *min_cap_ctrl;

	u32 session;			/* id in dev->sessions, 0 = none yet */
	u64 conn;			/* daemon connection of the session */
	u32 session_coded;		/* coded format of the open session */
	bool open_sent;			/* the daemon knows the session */
	bool dead;			/* daemon gone/stalled/failed: -EIO */
	bool closing;			/* release() in progress */
	unsigned long last_progress;	/* jiffies of the daemon's last reply */

	struct daedalus_qstate out;
	struct daedalus_qstate cap;

	struct v4l2_pix_format_mplane out_fmt;
	struct v4l2_pix_format_mplane cap_fmt;		/* G/S_FMT(CAPTURE) */
	struct v4l2_pix_format_mplane cap_alloc_fmt;	/* buffers made for */

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

/* daedalus_video.c */
int daedalus_video_register(struct daedalus_dev *dev);
void daedalus_video_unregister(struct daedalus_dev *dev);
void daedalus_fill_cap_fmt(struct v4l2_pix_format_mplane *pix, u32 pixelformat,
			   u32 width, u32 height);
bool daedalus_coded_format_known(u32 fourcc);

/* daedalus_chan.c */
int daedalus_chan_register(struct daedalus_dev *dev);
void daedalus_chan_unregister(struct daedalus_dev *dev);
int daedalus_chan_send(struct daedalus_chan *chan, u64 conn,
		       const struct daedalus_msg *msg);
bool daedalus_chan_current(struct daedalus_chan *chan, u64 *conn);
bool daedalus_chan_continuous(struct daedalus_chan *chan, u32 fourcc);
unsigned int daedalus_chan_formats(struct daedalus_chan *chan,
				   u32 formats[DAEDALUS_MAX_CODED_FORMATS]);

/* daedalus_session.c */
void daedalus_sessions_init(struct daedalus_dev *dev);
void daedalus_sessions_cleanup(struct daedalus_dev *dev);
int daedalus_session_start(struct daedalus_ctx *ctx);
void daedalus_session_release(struct daedalus_ctx *ctx);
void daedalus_session_push(struct daedalus_ctx *ctx);
void daedalus_session_remember(struct daedalus_ctx *ctx,
			       const struct vb2_v4l2_buffer *vbuf);
void daedalus_session_take_back(struct daedalus_ctx *ctx, unsigned int queue,
				enum vb2_buffer_state state);
void daedalus_session_stop(struct daedalus_ctx *ctx, unsigned int queue);
int daedalus_session_drain(struct daedalus_ctx *ctx);
void daedalus_session_unpark(struct daedalus_ctx *ctx);
int daedalus_session_reply(struct daedalus_dev *dev,
			   const struct daedalus_msg *msg);
int daedalus_session_get_buf_fd(struct daedalus_dev *dev,
				struct daedalus_buf_fd *req);
void daedalus_sessions_disconnect(struct daedalus_dev *dev, u64 conn);
void daedalus_watchdog_work(struct work_struct *work);

#endif /* DAEDALUS_H */
