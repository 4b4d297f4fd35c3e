// SPDX-License-Identifier: GPL-2.0
/*
 * daedalus-v4l2: the daemon channel /dev/daedalus-v4l2 (misc device).
 * Kernel->daemon messages wait in each session's outbox (and SESSION_CLOSE
 * in one close list) until read() takes them, one session after another;
 * daemon->kernel messages arriving by write() go to daedalus_session.c one
 * by one. The protocol is documented in include/uapi/linux/daedalus_v4l2.h.
 */

#include <linux/dma-buf.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/module.h>
#include <linux/poll.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#include "daedalus.h"

/* An unread SESSION_CLOSE: it outlives the file handle of its session. */
struct daedalus_close {
	struct list_head node;
	u32 session;
};

static struct daedalus_dev *chan_to_dev(struct daedalus_chan *chan)
{
	return container_of(chan, struct daedalus_dev, chan);
}

static struct daedalus_msg *daedalus_outbox_at(struct daedalus_outbox *ob,
					       unsigned int i)
{
	return &ob->msgs[(ob->head + i) % DAEDALUS_OUTBOX_MSGS];
}

/* Messages that stand for a state, not a buffer: a newer one replaces. */
static bool daedalus_msg_is_control(u32 type)
{
	return type == DAEDALUS_K2D_SESSION_OPEN ||
	       type == DAEDALUS_K2D_FLUSH ||
	       type == DAEDALUS_K2D_CAPTURE_RESET ||
	       type == DAEDALUS_K2D_DRAIN;
}

/* Is unread @old superseded by the control message @new? */
static bool daedalus_superseded(const struct daedalus_msg *old,
				const struct daedalus_msg *new)
{
	if (old->session != new->session || old->type == new->type)
		return true;
	/* the take-back already gave those buffers back to the client */
	if (new->type == DAEDALUS_K2D_FLUSH)
		return old->type == DAEDALUS_K2D_BITSTREAM;
	if (new->type == DAEDALUS_K2D_CAPTURE_RESET)
		return old->type == DAEDALUS_K2D_CAPTURE;
	return false;
}

/*
 * Removes the unread messages @drop accepts (all of them without @new),
 * keeping the order of the others. Returns whether a SESSION_OPEN went.
 * Under chan->lock.
 */
static bool daedalus_outbox_purge(struct daedalus_chan *chan,
				  struct daedalus_outbox *ob,
				  const struct daedalus_msg *new)
{
	struct daedalus_msg *m;
	unsigned int r, w = 0;
	bool open_dropped = false;

	for (r = 0; r < ob->count; r++) {
		m = daedalus_outbox_at(ob, r);
		if (!new || daedalus_superseded(m, new)) {
			open_dropped |= m->type == DAEDALUS_K2D_SESSION_OPEN;
			continue;
		}
		if (w != r)
			*daedalus_outbox_at(ob, w) = *m;
		w++;
	}
	ob->count = w;
	if (!w)
		list_del_init(&ob->node);
	return open_dropped;
}

static void daedalus_outbox_append(struct daedalus_chan *chan,
				   struct daedalus_outbox *ob,
				   const struct daedalus_msg *msg)
{
	if (!ob->count)
		list_add_tail(&ob->node, &chan->ready);
	*daedalus_outbox_at(ob, ob->count) = *msg;
	ob->count++;
}

/*
 * Queues one message of @ctx's session for the daemon. -ENODEV when the
 * session's daemon is gone; -ENOSPC when a buffer message finds the outbox
 * full: the buffer waits, the push work sends it once the daemon has read
 * (back-pressure). Control messages always fit (see daedalus.h).
 */
int daedalus_chan_send(struct daedalus_ctx *ctx, const struct daedalus_msg *msg)
{
	struct daedalus_chan *chan = &ctx->dev->chan;
	struct daedalus_outbox *ob = &ctx->outbox;
	unsigned long flags;
	int ret = 0;

	spin_lock_irqsave(&chan->lock, flags);
	if (!chan->connected || chan->conn != ctx->conn) {
		ret = -ENODEV;
	} else if (daedalus_msg_is_control(msg->type)) {
		daedalus_outbox_purge(chan, ob, msg);
		if (WARN_ON_ONCE(ob->count >= DAEDALUS_OUTBOX_MSGS))
			ret = -ENOSPC;
		else
			daedalus_outbox_append(chan, ob, msg);
	} else if (ob->count >= DAEDALUS_OUTBOX_MSGS - DAEDALUS_OUTBOX_CONTROL) {
		ob->blocked = true;
		ret = -ENOSPC;
	} else {
		daedalus_outbox_append(chan, ob, msg);
	}
	spin_unlock_irqrestore(&chan->lock, flags);

	if (!ret)
		wake_up_interruptible(&chan->wait);
	return ret;
}

/*
 * @ctx's session ends: its unread messages go, and SESSION_CLOSE is queued
 * unless the daemon never read the SESSION_OPEN (then it never knew the
 * session). Called under ctx->lock.
 */
void daedalus_chan_close(struct daedalus_ctx *ctx)
{
	struct daedalus_chan *chan = &ctx->dev->chan;
	struct daedalus_close *close;
	unsigned long flags;
	bool queued = false;

	close = kmalloc(sizeof(*close), GFP_KERNEL);

	spin_lock_irqsave(&chan->lock, flags);
	ctx->outbox.blocked = false;
	if (!daedalus_outbox_purge(chan, &ctx->outbox, NULL) &&
	    chan->connected && chan->conn == ctx->conn && close) {
		close->session = ctx->session;
		list_add_tail(&close->node, &chan->closes);
		queued = true;
	}
	spin_unlock_irqrestore(&chan->lock, flags);

	if (queued)
		wake_up_interruptible(&chan->wait);
	else
		kfree(close);
}

/* Drops every unread message: the daemon is gone. Under chan->lock. */
static void daedalus_chan_drop_all(struct daedalus_chan *chan)
{
	struct daedalus_outbox *ob, *tmp_ob;
	struct daedalus_close *close, *tmp;

	list_for_each_entry_safe(ob, tmp_ob, &chan->ready, node) {
		ob->blocked = false;
		daedalus_outbox_purge(chan, ob, NULL);
	}
	list_for_each_entry_safe(close, tmp, &chan->closes, node) {
		list_del(&close->node);
		kfree(close);
	}
}

/*
 * Takes up to @max unread messages into @out: closes first (each answers
 * an OPEN the daemon read, so they are few and free daemon resources),
 * then one message per session in turn, so no session's backlog delays
 * another's. Sessions whose buffers waited for room get their push work.
 */
static unsigned int daedalus_chan_take(struct daedalus_chan *chan,
				       struct daedalus_msg *out,
				       unsigned int max)
{
	struct daedalus_outbox *ob;
	struct daedalus_close *close;
	unsigned long flags;
	unsigned int n = 0;

	spin_lock_irqsave(&chan->lock, flags);
	while (n < max && !list_empty(&chan->closes)) {
		close = list_first_entry(&chan->closes, struct daedalus_close,
					 node);
		memset(&out[n], 0, sizeof(out[n]));
		out[n].type = DAEDALUS_K2D_SESSION_CLOSE;
		out[n].session = close->session;
		n++;
		list_del(&close->node);
		kfree(close);
	}
	while (n < max && !list_empty(&chan->ready)) {
		ob = list_first_entry(&chan->ready, struct daedalus_outbox,
				      node);
		out[n++] = ob->msgs[ob->head];
		ob->head = (ob->head + 1) % DAEDALUS_OUTBOX_MSGS;
		ob->count--;
		list_del_init(&ob->node);
		if (ob->count)
			list_add_tail(&ob->node, &chan->ready);
		if (ob->blocked &&
		    ob->count < DAEDALUS_OUTBOX_MSGS - DAEDALUS_OUTBOX_CONTROL) {
			ob->blocked = false;
			schedule_work(&ob->push_work);
		}
	}
	spin_unlock_irqrestore(&chan->lock, flags);
	return n;
}

/*
 * Protocol tracing through dynamic debug: `dyndbg=+p` at load, or
 * `echo 'module daedalus_v4l2 +p' > /sys/kernel/debug/dynamic_debug/control`.
 * Type, session and the first 32 bytes of the body of every message.
 */
void daedalus_chan_trace(struct daedalus_dev *dev, const char *dir,
			 const struct daedalus_msg *msg)
{
	dev_dbg(&dev->pdev->dev, "%s type %u session %u: %*ph\n", dir,
		msg->type, msg->session, 32, msg->raw);
}

static bool daedalus_chan_pending(struct daedalus_chan *chan)
{
	unsigned long flags;
	bool pending;

	spin_lock_irqsave(&chan->lock, flags);
	pending = !list_empty(&chan->ready) || !list_empty(&chan->closes);
	spin_unlock_irqrestore(&chan->lock, flags);
	return pending;
}

/* Does daemon connection @conn confirm take-backs (RELEASED)? */
bool daedalus_chan_release_ack(struct daedalus_chan *chan, u64 conn)
{
	unsigned long flags;
	bool ack;

	spin_lock_irqsave(&chan->lock, flags);
	ack = chan->connected && chan->conn == conn && chan->release_ack;
	spin_unlock_irqrestore(&chan->lock, flags);
	return ack;
}

/*
 * Liveness (UAPI header): whether the daemon has sent nothing at all for
 * @timeout; false for a daemon without DAEDALUS_HELLO_F_ALIVE, which is
 * judged per session instead. How long it has been silent goes to
 * @silent_ms.
 */
bool daedalus_chan_silent(struct daedalus_chan *chan, unsigned long timeout,
			  unsigned int *silent_ms)
{
	unsigned long flags, heard;
	bool alive;

	spin_lock_irqsave(&chan->lock, flags);
	alive = chan->connected && chan->alive;
	heard = chan->last_heard;
	spin_unlock_irqrestore(&chan->lock, flags);
	*silent_ms = jiffies_to_msecs(jiffies - heard);
	return alive && time_after_eq(jiffies, heard + timeout);
}

/* Is a daemon connected? Its connection id goes to @conn. */
bool daedalus_chan_current(struct daedalus_chan *chan, u64 *conn)
{
	unsigned long flags;
	bool connected;

	spin_lock_irqsave(&chan->lock, flags);
	connected = chan->connected;
	*conn = chan->conn;
	spin_unlock_irqrestore(&chan->lock, flags);
	return connected;
}

/*
 * Whether the connected daemon takes coded format @fourcc in OUTPUT buffers
 * of any chunking (V4L2_FMT_FLAG_CONTINUOUS_BYTESTREAM).
 */
bool daedalus_chan_continuous(struct daedalus_chan *chan, u32 fourcc)
{
	unsigned long flags;
	bool continuous = false;
	unsigned int i;

	spin_lock_irqsave(&chan->lock, flags);
	for (i = 0; chan->connected && i < chan->num_coded_formats; i++)
		if (chan->coded_formats[i] == fourcc)
			continuous = chan->continuous_formats & BIT(i);
	spin_unlock_irqrestore(&chan->lock, flags);
	return continuous;
}

/* The coded formats the connected daemon announced; 0 without a daemon. */
unsigned int daedalus_chan_formats(struct daedalus_chan *chan,
				   u32 formats[DAEDALUS_MAX_CODED_FORMATS])
{
	unsigned long flags;
	unsigned int n = 0;

	spin_lock_irqsave(&chan->lock, flags);
	if (chan->connected) {
		n = chan->num_coded_formats;
		memcpy(formats, chan->coded_formats, n * sizeof(formats[0]));
	}
	spin_unlock_irqrestore(&chan->lock, flags);
	return n;
}

static bool daedalus_chan_is_connected(struct daedalus_chan *chan)
{
	u64 conn;

	return daedalus_chan_current(chan, &conn);
}

static int daedalus_chan_open(struct inode *inode, struct file *file)
{
	unsigned long flags;
	struct miscdevice *misc = file->private_data;
	struct daedalus_chan *chan = container_of(misc, struct daedalus_chan,
						  misc);
	int ret = 0;

	spin_lock_irqsave(&chan->lock, flags);
	if (chan->busy)
		ret = -EBUSY;	/* one daemon at a time */
	else
		chan->busy = true;
	spin_unlock_irqrestore(&chan->lock, flags);
	if (ret)
		return ret;

	file->private_data = chan;
	return stream_open(inode, file);
}

static int daedalus_chan_release(struct inode *inode, struct file *file)
{
	unsigned long flags;
	struct daedalus_chan *chan = file->private_data;
	struct daedalus_dev *dev = chan_to_dev(chan);
	bool was_connected;
	u64 conn;

	spin_lock_irqsave(&chan->lock, flags);
	was_connected = chan->connected;
	conn = chan->conn;
	chan->connected = false;
	chan->num_coded_formats = 0;
	/* no reader is left and no writer gets past !connected */
	daedalus_chan_drop_all(chan);
	spin_unlock_irqrestore(&chan->lock, flags);

	if (was_connected) {
		cancel_delayed_work_sync(&dev->watchdog);
		daedalus_sessions_disconnect(dev, conn);
		dev_info(&dev->pdev->dev, "daemon disconnected\n");
	}

	/* only now may the next daemon connect: the old sessions are dead */
	spin_lock_irqsave(&chan->lock, flags);
	chan->busy = false;
	spin_unlock_irqrestore(&chan->lock, flags);
	return 0;
}

static ssize_t daedalus_chan_read(struct file *file, char __user *buf,
				  size_t count, loff_t *ppos)
{
	struct daedalus_chan *chan = file->private_data;
	unsigned int i, n, max;
	int ret;

	if (count % sizeof(struct daedalus_msg))
		return -EINVAL;
	if (!daedalus_chan_is_connected(chan))
		return -EPROTO;		/* HELLO first */
	if (!count)
		return 0;
	max = min_t(size_t, count / sizeof(struct daedalus_msg),
		    DAEDALUS_READ_MSGS);

	ret = mutex_lock_interruptible(&chan->read_lock);
	if (ret)
		return ret;
	while (!(n = daedalus_chan_take(chan, chan->bounce, max))) {
		mutex_unlock(&chan->read_lock);
		if (file->f_flags & O_NONBLOCK)
			return -EAGAIN;
		ret = wait_event_interruptible(chan->wait,
					       daedalus_chan_pending(chan));
		if (ret)
			return ret;
		ret = mutex_lock_interruptible(&chan->read_lock);
		if (ret)
			return ret;
	}
	for (i = 0; i < n; i++)
		daedalus_chan_trace(chan_to_dev(chan), "k2d", &chan->bounce[i]);
	/* taken messages are the daemon's: a bad buffer loses them */
	ret = copy_to_user(buf, chan->bounce, n * sizeof(*chan->bounce)) ?
	      -EFAULT : n * sizeof(*chan->bounce);
	mutex_unlock(&chan->read_lock);
	return ret;
}

static ssize_t daedalus_chan_write(struct file *file, const char __user *buf,
				   size_t count, loff_t *ppos)
{
	struct daedalus_chan *chan = file->private_data;
	struct daedalus_dev *dev = chan_to_dev(chan);
	struct daedalus_msg msg;
	size_t done;
	int ret = 0;

	if (count % sizeof(msg))
		return -EINVAL;
	if (!daedalus_chan_is_connected(chan))
		return -EPROTO;

	/* the daemon speaks: whatever the messages, it is not stopped */
	WRITE_ONCE(chan->last_heard, jiffies);

	/* in order; stop at the first invalid message */
	for (done = 0; done < count; done += sizeof(msg)) {
		if (copy_from_user(&msg, buf + done, sizeof(msg))) {
			ret = -EFAULT;
			break;
		}
		ret = daedalus_session_reply(dev, &msg);
		if (ret)
			break;
	}
	return done ? done : ret;
}

static __poll_t daedalus_chan_poll(struct file *file, poll_table *wait)
{
	struct daedalus_chan *chan = file->private_data;
	__poll_t mask = EPOLLOUT | EPOLLWRNORM;

	poll_wait(file, &chan->wait, wait);
	if (daedalus_chan_pending(chan))
		mask |= EPOLLIN | EPOLLRDNORM;
	return mask;
}

static long daedalus_chan_hello(struct daedalus_chan *chan,
				struct daedalus_hello __user *uarg)
{
	unsigned long flags;
	struct daedalus_dev *dev = chan_to_dev(chan);
	struct daedalus_hello hello;
	unsigned int i, j;
	long ret = 0;

	if (copy_from_user(&hello, uarg, sizeof(hello)))
		return -EFAULT;
	if (hello.version_major != DAEDALUS_PROTO_VERSION_MAJOR)
		return -EPROTONOSUPPORT;
	if (hello.flags & ~(DAEDALUS_HELLO_F_RELEASE_ACK | DAEDALUS_HELLO_F_ALIVE) ||
	    memchr_inv(hello.reserved, 0, sizeof(hello.reserved)))
		return -EINVAL;
	if (!hello.num_coded_formats ||
	    hello.num_coded_formats > DAEDALUS_MAX_CODED_FORMATS)
		return -EINVAL;
	if (hello.continuous_formats & ~GENMASK(hello.num_coded_formats - 1, 0))
		return -EINVAL;
	for (i = 0; i < hello.num_coded_formats; i++) {
		if (!daedalus_coded_format_known(hello.coded_formats[i]))
			return -EINVAL;
		for (j = 0; j < i; j++)
			if (hello.coded_formats[j] == hello.coded_formats[i])
				return -EINVAL;
	}

	if (daedalus_chan_is_connected(chan))
		return -EINVAL;		/* HELLO once per open */

	hello.version_minor = DAEDALUS_PROTO_VERSION_MINOR;
	hello.msg_size = sizeof(struct daedalus_msg);
	if (copy_to_user(uarg, &hello, sizeof(hello)))
		return -EFAULT;

	spin_lock_irqsave(&chan->lock, flags);
	/* two threads racing HELLO on the one open file: the first wins */
	if (chan->connected) {
		ret = -EINVAL;
	} else {
		memcpy(chan->coded_formats, hello.coded_formats,
		       hello.num_coded_formats * sizeof(hello.coded_formats[0]));
		chan->num_coded_formats = hello.num_coded_formats;
		chan->continuous_formats = hello.continuous_formats;
		chan->release_ack = hello.flags & DAEDALUS_HELLO_F_RELEASE_ACK;
		chan->alive = hello.flags & DAEDALUS_HELLO_F_ALIVE;
		chan->last_heard = jiffies;
		chan->conn++;
		chan->connected = true;
	}
	spin_unlock_irqrestore(&chan->lock, flags);
	if (ret)
		return ret;

	/* runs while a daemon is connected; daemon_timeout_ms may change */
	schedule_delayed_work(&dev->watchdog, msecs_to_jiffies(10));
	dev_info(&dev->pdev->dev, "daemon connected (protocol %u.%u, %u coded formats, take-backs %s, %s)\n",
		 hello.version_major, DAEDALUS_PROTO_VERSION_MINOR,
		 hello.num_coded_formats,
		 hello.flags & DAEDALUS_HELLO_F_RELEASE_ACK ?
		 "confirmed" : "not confirmed",
		 hello.flags & DAEDALUS_HELLO_F_ALIVE ?
		 "stall watch on the daemon" : "stall watch per session");
	return 0;
}

/*
 * The fd is installed only after the daemon has its number: once installed,
 * another daemon thread could close it and reuse the number, so it can no
 * longer be taken back.
 */
static long daedalus_chan_get_buf_fd(struct daedalus_chan *chan,
				     struct daedalus_buf_fd __user *uarg)
{
	struct daedalus_buf_fd req;
	struct dma_buf *dbuf;
	int fd;

	if (copy_from_user(&req, uarg, sizeof(req)))
		return -EFAULT;
	if (!daedalus_chan_is_connected(chan))
		return -EPROTO;

	dbuf = daedalus_session_get_dmabuf(chan_to_dev(chan), &req);
	if (IS_ERR(dbuf))
		return PTR_ERR(dbuf);
	fd = get_unused_fd_flags(O_CLOEXEC);
	if (fd < 0) {
		dma_buf_put(dbuf);
		return fd;
	}
	req.fd = fd;
	if (copy_to_user(uarg, &req, sizeof(req))) {
		put_unused_fd(fd);
		dma_buf_put(dbuf);
		return -EFAULT;
	}
	/* the reference taken for the daemon goes to its fd table */
	fd_install(fd, dbuf->file);
	return 0;
}

static long daedalus_chan_ioctl(struct file *file, unsigned int cmd,
				unsigned long arg)
{
	struct daedalus_chan *chan = file->private_data;

	switch (cmd) {
	case DAEDALUS_IOC_HELLO:
		return daedalus_chan_hello(chan, (void __user *)arg);
	case DAEDALUS_IOC_GET_BUF_FD:
		return daedalus_chan_get_buf_fd(chan, (void __user *)arg);
	default:
		return -ENOTTY;
	}
}

static const struct file_operations daedalus_chan_fops = {
	.owner		= THIS_MODULE,
	.open		= daedalus_chan_open,
	.release	= daedalus_chan_release,
	.read		= daedalus_chan_read,
	.write		= daedalus_chan_write,
	.poll		= daedalus_chan_poll,
	.unlocked_ioctl	= daedalus_chan_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
};

int daedalus_chan_register(struct daedalus_dev *dev)
{
	struct daedalus_chan *chan = &dev->chan;
	int ret;

	mutex_init(&chan->read_lock);
	spin_lock_init(&chan->lock);
	init_waitqueue_head(&chan->wait);
	INIT_LIST_HEAD(&chan->ready);
	INIT_LIST_HEAD(&chan->closes);
	chan->bounce = kcalloc(DAEDALUS_READ_MSGS, sizeof(*chan->bounce),
			       GFP_KERNEL);
	if (!chan->bounce) {
		ret = -ENOMEM;
		goto err_mutex;
	}

	chan->misc.minor = MISC_DYNAMIC_MINOR;
	chan->misc.name = DAEDALUS_CHAN_NAME;
	chan->misc.fops = &daedalus_chan_fops;
	chan->misc.mode = 0600;
	chan->misc.parent = &dev->pdev->dev;
	ret = misc_register(&chan->misc);
	if (ret) {
		dev_err(&dev->pdev->dev, "misc_register: %d\n", ret);
		goto err_bounce;
	}
	return 0;

err_bounce:
	kfree(chan->bounce);
err_mutex:
	mutex_destroy(&chan->read_lock);
	return ret;
}

void daedalus_chan_unregister(struct daedalus_dev *dev)
{
	struct daedalus_chan *chan = &dev->chan;

	misc_deregister(&chan->misc);
	kfree(chan->bounce);
	mutex_destroy(&chan->read_lock);
}
