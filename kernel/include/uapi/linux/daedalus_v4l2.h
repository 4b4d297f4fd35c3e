/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * daedalus-v4l2: the channel between the kernel module and the decode daemon.
 *
 * The daemon opens /dev/daedalus-v4l2 (one holder at a time, -EBUSY for a
 * second), calls DAEDALUS_IOC_HELLO, then
 *   - read()s kernel->daemon messages (struct daedalus_msg, whole messages
 *     only; count must be a multiple of sizeof(struct daedalus_msg); blocks
 *     unless O_NONBLOCK; poll() reports EPOLLIN when messages are pending),
 *   - write()s daemon->kernel messages (whole messages; processed in order;
 *     processing stops at the first invalid one, which gets -EINVAL if it is
 *     the first of the write, otherwise the byte count of the accepted ones
 *     is returned),
 *   - gets the dma-buf of a buffer with DAEDALUS_IOC_GET_BUF_FD; the fd is
 *     installed in the daemon's own fd table. The daemon maps it once and
 *     caches the mapping keyed by (session, queue, index, generation).
 *
 * Sessions: one per open V4L2 file handle that started streaming. Ids are
 * handed out cyclically from 1 to 2^31 - 1: an id comes back only after
 * 2^31 - 2 other sessions. A file handle gets a new id (SESSION_CLOSE of
 * the old one, then SESSION_OPEN) when it switches codecs and when it
 * starts again after its session failed. The module parameter max_sessions
 * bounds how many are open at once.
 *
 * Flow control: every session has its own queue of unread kernel->daemon
 * messages (64). read() returns pending SESSION_CLOSEs first, then one
 * message of each session in turn, so one session's backlog never delays
 * another's. Unread messages that a newer one makes pointless are dropped
 * before the daemon sees them: FLUSH drops the session's unread BITSTREAMs
 * and FLUSH, CAPTURE_RESET its unread CAPTUREs and CAPTURE_RESET, DRAIN an
 * unread DRAIN, and a SESSION_CLOSE whose SESSION_OPEN was never read drops
 * both. So a daemon may see epochs jump by more than one, and never sees a
 * buffer message that a take-back already superseded. Buffers beyond a
 * session's queue wait in the kernel until the daemon reads (back-pressure;
 * nothing fails because the daemon is slow to read).
 *
 * Buffer ownership: a buffer announced by DAEDALUS_K2D_BITSTREAM or
 * DAEDALUS_K2D_CAPTURE belongs to the daemon until it answers with
 * DAEDALUS_D2K_BITSTREAM_DONE / DAEDALUS_D2K_FRAME_DONE, or until the kernel
 * takes it back: DAEDALUS_K2D_FLUSH takes back every OUTPUT buffer,
 * DAEDALUS_K2D_CAPTURE_RESET every CAPTURE buffer, SESSION_CLOSE all.
 *
 * Epochs: every take-back increments the queue's epoch and the message
 * carries the new value. Messages carry the epoch of their queue. A reply with
 * an older epoch is a legitimate race (the buffer was taken back while the
 * daemon worked on it): the kernel drops it silently and the write succeeds.
 * A reply with the current epoch is validated in full (index owned by the
 * daemon, sizes within the plane, flags allowed in the current state);
 * anything else is -EINVAL and a log line.
 *
 * Synchronous take-back (minor >= 3, a daemon that sets
 * DAEDALUS_HELLO_F_RELEASE_ACK in HELLO): after every FLUSH and every
 * CAPTURE_RESET the daemon answers DAEDALUS_D2K_RELEASED with the queue and
 * the message's epoch once it will neither read nor write any buffer of
 * that queue from an earlier epoch again (mappings may stay cached: the
 * promise is about accesses, not about mappings). VIDIOC_STREAMOFF, and
 * close() of a streaming file handle, wait for it, bounded by the module's
 * daemon_timeout_ms (2 s when that is 0); without it in time the session
 * fails. A daemon without the flag is not waited for: its buffers go back
 * to the client at once, whatever it still does with them.
 *
 * Liveness (minor >= 3, a daemon that sets DAEDALUS_HELLO_F_ALIVE): the
 * daemon writes DAEDALUS_D2K_ALIVE at least every
 * DAEDALUS_ALIVE_INTERVAL_MS while connected, from a thread that never
 * waits for a decoder. The stall watchdog then judges the daemon, not each
 * session's latency: sessions fail only when nothing at all came from the
 * daemon for daemon_timeout_ms, and never sooner than four intervals (a
 * stopped or hung process). A decode that
 * is merely slow, on a loaded or emulated machine, is not a stall; a
 * session stuck inside its decoder is the daemon's to report
 * (SESSION_ERROR). Without the flag, a session fails when the daemon holds
 * its bitstream and could answer but sends nothing for it for
 * daemon_timeout_ms.
 *
 * Generations: every (re)allocation of a queue's buffers (REQBUFS,
 * CREATE_BUFS) increments the queue's generation. DAEDALUS_IOC_GET_BUF_FD
 * with an old generation gets -ESTALE.
 *
 * Memory sequence (minor >= 2): with V4L2_MEMORY_DMABUF a client may queue
 * another dma-buf (or another length) under an index it queued before,
 * without a REQBUFS. Each buffer has a mem_seq, never 0, that changes
 * whenever its memory does (vb2 attached a different dma-buf: buf_init);
 * BITSTREAM and CAPTURE carry it. A daemon caching mappings must key them
 * by (queue, index, plane, generation, mem_seq) and fetch the fd again when
 * mem_seq differs from its cached one, else it reads or writes the previous
 * dma-buf. DAEDALUS_IOC_GET_BUF_FD with a non-zero mem_seq gets -ESTALE if
 * the buffer's memory changed since, so an fd always belongs to the mem_seq
 * asked for. A minor-1 kernel sends 0 in the messages and rejects a
 * non-zero mem_seq in the ioctl (it was reserved): a daemon passes on the
 * value of the message, so it sends 0 there.
 *
 * Frame layout: CAPTURE messages carry the format the client negotiated.
 * For single-memory-plane formats the component planes follow the V4L2
 * layout: NV12 and P010 have the interleaved CbCr plane at
 * bytesperline[0] * height; YUV420 has Cb at bytesperline[0] * height and Cr
 * at that plus (bytesperline[0] / 2) * (height / 2) (height rounded up to
 * even). NV12M has two memory planes (Y, CbCr) each with its own
 * bytesperline.
 */
#ifndef _UAPI_LINUX_DAEDALUS_V4L2_H
#define _UAPI_LINUX_DAEDALUS_V4L2_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define DAEDALUS_PROTO_VERSION_MAJOR	1
#define DAEDALUS_PROTO_VERSION_MINOR	3

#define DAEDALUS_MSG_SIZE		128
#define DAEDALUS_MAX_PLANES		3
#define DAEDALUS_MAX_CODED_FORMATS	16

/* Queue selector in messages and DAEDALUS_IOC_GET_BUF_FD. */
#define DAEDALUS_QUEUE_OUTPUT		0	/* bitstream */
#define DAEDALUS_QUEUE_CAPTURE		1	/* decoded frames */

/* --------------------------------------------------------------------- */
/* kernel -> daemon                                                       */
/* --------------------------------------------------------------------- */

/*
 * A session starts: the client streams on OUTPUT for the first time (or with
 * another coded format than before, after a SESSION_CLOSE). The daemon
 * creates a decoder for coded_format (a V4L2 fourcc it announced in HELLO).
 */
#define DAEDALUS_K2D_SESSION_OPEN	1
/* The session ends (file handle closed): every buffer is taken back. */
#define DAEDALUS_K2D_SESSION_CLOSE	2
/* An OUTPUT buffer with bitstream is queued. */
#define DAEDALUS_K2D_BITSTREAM		3
/* An empty CAPTURE buffer is queued, ready for a frame. */
#define DAEDALUS_K2D_CAPTURE		4
/*
 * CAPTURE streamed off: every CAPTURE buffer is taken back. Decoded frames
 * the daemon still holds stay pending for the next CAPTURE buffers. A drain
 * in progress is cancelled (the kernel left the draining state).
 */
#define DAEDALUS_K2D_CAPTURE_RESET	5
/*
 * V4L2_DEC_CMD_STOP: decode everything queued so far, return every frame,
 * then mark the end with a FRAME_DONE carrying DAEDALUS_FRAME_F_DRAIN_END
 * (on the last frame, or on an empty buffer with bytesused 0). Afterwards the
 * decoder is ready for new bitstream (FFmpeg flushed).
 */
#define DAEDALUS_K2D_DRAIN		6
/*
 * OUTPUT streamed off (seek): every OUTPUT buffer is taken back. Drop queued
 * bitstream and every frame not yet written, reset the decoder, and restart
 * at the next keyframe. If a drain was in progress, end it with an empty
 * DRAIN_END frame as soon as a CAPTURE buffer is available.
 */
#define DAEDALUS_K2D_FLUSH		7

struct daedalus_k2d_session_open {
	__u32 coded_format;		/* V4L2 fourcc */
	__u32 width;			/* client's hint from S_FMT(OUTPUT), may be 0 */
	__u32 height;
	__u32 reserved[5];
};

struct daedalus_k2d_bitstream {
	__u64 timestamp_ns;		/* copied to the frames it produces */
	__u32 index;			/* vb2 index on the OUTPUT queue */
	__u32 generation;		/* OUTPUT queue generation */
	__u32 epoch;			/* OUTPUT queue epoch */
	__u32 bytesused;		/* valid bytes from the start of plane 0 */
	__u32 length;			/* plane 0 length */
	__u32 flags;			/* reserved, 0 */
	__u32 mem_seq;			/* buffer memory sequence, see top */
	/*
	 * Minor >= 3: bytes before the bitstream (v4l2_plane.data_offset);
	 * the bitstream is [data_offset, bytesused). 0 from older kernels.
	 */
	__u32 data_offset;
};

struct daedalus_k2d_capture {
	__u32 index;			/* vb2 index on the CAPTURE queue */
	__u32 generation;		/* CAPTURE queue generation */
	__u32 epoch;			/* CAPTURE queue epoch */
	__u32 pixelformat;		/* V4L2 fourcc: NV12, NV12M, YUV420, P010 */
	__u32 width;			/* format width and height, in pixels */
	__u32 height;
	__u32 num_planes;		/* memory planes, 1..DAEDALUS_MAX_PLANES */
	__u32 mem_seq;			/* buffer memory sequence, see top */
	__u32 bytesperline[DAEDALUS_MAX_PLANES];
	__u32 length[DAEDALUS_MAX_PLANES];	/* plane sizes in bytes */
};

struct daedalus_k2d_epoch {		/* CAPTURE_RESET, FLUSH */
	__u32 epoch;			/* the queue's new epoch */
	__u32 reserved[7];
};

/* --------------------------------------------------------------------- */
/* daemon -> kernel                                                       */
/* --------------------------------------------------------------------- */

/* An OUTPUT buffer is consumed and may go back to the client. */
#define DAEDALUS_D2K_BITSTREAM_DONE	101
/* A CAPTURE buffer holds a frame (or is an empty end marker). */
#define DAEDALUS_D2K_FRAME_DONE		102
/*
 * The stream format, parsed from the bitstream. Sent before the first frame
 * of a session (even when it matches what the client set) and again when it
 * changes. On a change the daemon first returns every frame of the old
 * format, then sends FORMAT, then (if the client's CAPTURE buffers cannot
 * take the new format) marks a CAPTURE buffer with DAEDALUS_FRAME_F_CHANGE_END
 * and waits for CAPTURE_RESET and new buffers.
 */
#define DAEDALUS_D2K_FORMAT		103
/* The session cannot continue; the kernel errors both queues. */
#define DAEDALUS_D2K_SESSION_ERROR	104
/*
 * Minor >= 3, DAEDALUS_HELLO_F_RELEASE_ACK: the daemon is done with every
 * buffer of the queue from before the epoch (see "Synchronous take-back").
 */
#define DAEDALUS_D2K_RELEASED		105
/*
 * Minor >= 3, DAEDALUS_HELLO_F_ALIVE: the daemon is alive (see
 * "Liveness"). Session 0, body all zero.
 */
#define DAEDALUS_D2K_ALIVE		106
#define DAEDALUS_ALIVE_INTERVAL_MS	250

/* bitstream_done.flags */
#define DAEDALUS_BITSTREAM_F_ERROR	(1U << 0)	/* corrupt, not decoded */

/* frame_done.flags */
#define DAEDALUS_FRAME_F_ERROR		(1U << 0)	/* V4L2_BUF_FLAG_ERROR */
#define DAEDALUS_FRAME_F_KEYFRAME	(1U << 1)	/* V4L2_BUF_FLAG_KEYFRAME */
/* Last buffer of a drain: V4L2_BUF_FLAG_LAST + V4L2_EVENT_EOS. */
#define DAEDALUS_FRAME_F_DRAIN_END	(1U << 2)
/* Last buffer before a resolution change: V4L2_BUF_FLAG_LAST. */
#define DAEDALUS_FRAME_F_CHANGE_END	(1U << 3)
#define DAEDALUS_FRAME_F_ALL		0xfU

struct daedalus_d2k_bitstream_done {
	__u32 index;
	__u32 epoch;			/* OUTPUT epoch from the BITSTREAM message */
	__u32 flags;			/* DAEDALUS_BITSTREAM_F_* */
	__u32 reserved[5];
};

struct daedalus_d2k_frame_done {
	__u64 timestamp_ns;		/* from the bitstream that produced it */
	__u32 index;
	__u32 epoch;			/* CAPTURE epoch from the CAPTURE message */
	__u32 flags;			/* DAEDALUS_FRAME_F_* */
	__u32 num_planes;		/* must equal the buffer's memory planes */
	__u32 bytesused[DAEDALUS_MAX_PLANES];	/* each <= plane length */
	__u32 reserved;
};

struct daedalus_d2k_format {
	__u32 epoch;			/* OUTPUT epoch of the bitstream parsed */
	__u32 pixelformat;		/* native: V4L2_PIX_FMT_NV12 or _P010 */
	__u32 width;			/* frame size the CAPTURE buffers must hold */
	__u32 height;
	__u32 visible_left;		/* visible rectangle inside width x height */
	__u32 visible_top;
	__u32 visible_width;
	__u32 visible_height;
	__u32 bit_depth;		/* 8 or 10 */
	__u32 colorspace;		/* enum v4l2_colorspace */
	__u32 xfer_func;		/* enum v4l2_xfer_func */
	__u32 ycbcr_enc;		/* enum v4l2_ycbcr_encoding */
	__u32 quantization;		/* enum v4l2_quantization */
	__u32 min_capture_buffers;	/* 1..32 */
	__u32 reserved[2];
};

struct daedalus_d2k_session_error {
	__s32 error;			/* negative errno, for the log */
	__u32 reserved[7];
};

struct daedalus_d2k_released {
	__u32 queue;			/* DAEDALUS_QUEUE_* */
	__u32 epoch;			/* of the FLUSH or CAPTURE_RESET answered */
	__u32 reserved[6];
};

/* One message, both directions: a fixed DAEDALUS_MSG_SIZE bytes. */
struct daedalus_msg {
	__u32 type;			/* DAEDALUS_K2D_* or DAEDALUS_D2K_* */
	__u32 session;			/* session id; 0 only in ALIVE */
	__u32 reserved[2];		/* must be 0 */
	union {
		struct daedalus_k2d_session_open session_open;
		struct daedalus_k2d_bitstream bitstream;
		struct daedalus_k2d_capture capture;
		struct daedalus_k2d_epoch epoch;
		struct daedalus_d2k_bitstream_done bitstream_done;
		struct daedalus_d2k_frame_done frame_done;
		struct daedalus_d2k_format format;
		struct daedalus_d2k_session_error session_error;
		struct daedalus_d2k_released released;
		__u8 raw[DAEDALUS_MSG_SIZE - 16];
	};
};

/* --------------------------------------------------------------------- */
/* ioctls                                                                 */
/* --------------------------------------------------------------------- */

struct daedalus_hello {
	__u32 version_major;		/* in: must equal the kernel's */
	__u32 version_minor;		/* in: daemon's; out: kernel's */
	__u32 msg_size;			/* out: sizeof(struct daedalus_msg) */
	__u32 num_coded_formats;	/* in: 1..DAEDALUS_MAX_CODED_FORMATS */
	__u32 coded_formats[DAEDALUS_MAX_CODED_FORMATS];	/* in: fourccs */
	__u32 flags;			/* in: DAEDALUS_HELLO_F_* */
	/*
	 * in (minor >= 1): bit i set: the daemon parses coded_formats[i] from
	 * OUTPUT buffers of any chunking, so the format is advertised with
	 * V4L2_FMT_FLAG_CONTINUOUS_BYTESTREAM. Bits >= num_coded_formats: 0.
	 * A minor-0 kernel rejects a non-zero value (it was reserved): retry
	 * with 0.
	 */
	__u32 continuous_formats;
	__u32 reserved[6];		/* in: 0 */
};

struct daedalus_buf_fd {
	__u32 session;			/* in */
	__u32 queue;			/* in: DAEDALUS_QUEUE_* */
	__u32 index;			/* in */
	__u32 plane;			/* in */
	__u32 generation;		/* in: -ESTALE if the buffers changed */
	__s32 fd;			/* out: dma-buf fd, O_CLOEXEC */
	__u32 length;			/* out: plane length in bytes */
	/*
	 * in (minor >= 2): mem_seq of the BITSTREAM/CAPTURE message, -ESTALE
	 * if the buffer's memory changed since; 0: no check.
	 */
	__u32 mem_seq;
};

/*
 * hello.flags (minor >= 3; a minor-2 kernel rejects any flag with -EINVAL:
 * retry without). RELEASE_ACK: the daemon answers every FLUSH and
 * CAPTURE_RESET with DAEDALUS_D2K_RELEASED, and the kernel waits for it.
 */
#define DAEDALUS_HELLO_F_RELEASE_ACK	(1U << 0)
/* ALIVE: the daemon sends DAEDALUS_D2K_ALIVE (see "Liveness"). */
#define DAEDALUS_HELLO_F_ALIVE		(1U << 1)

#define DAEDALUS_IOC_MAGIC	'D'
/* Version handshake and codec announcement; required before read/write. */
#define DAEDALUS_IOC_HELLO	_IOWR(DAEDALUS_IOC_MAGIC, 0, struct daedalus_hello)
/* Export a buffer the daemon currently owns as a dma-buf fd. */
#define DAEDALUS_IOC_GET_BUF_FD	_IOWR(DAEDALUS_IOC_MAGIC, 1, struct daedalus_buf_fd)

#endif /* _UAPI_LINUX_DAEDALUS_V4L2_H */
