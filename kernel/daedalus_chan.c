// SPDX-License-Identifier: GPL-2.0
/*
 * daedalus-v4l2: the daemon channel /dev/daedalus-v4l2 (misc device).
 * Kernel->daemon messages wait in a bounded FIFO for read(); daemon->kernel
 * messages arriving by write() go to daedalus_session.c one by one. The
 * protocol is documented in include/uapi/linux/daedalus_v4l2.h.
 */

#include <linux/fdtable.h>
#include <linux/fs.h>
#include <linux/module.h>
#include <linux/poll.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#include "daedalus.h"

static struct daedalus_dev *chan_to_dev(struct daedalus_chan *chan)
{
	return container_of(chan, struct daedalus_dev, chan);
}

/*
 * Queues one message for the daemon connection @conn. -ENODEV when that
 * daemon is gone, -ENOSPC when the FIFO is full (the caller fails the
 * session: the daemon has stopped reading).
 */
int daedalus_chan_send(struct daedalus_chan *chan, u64 conn,
		       const struct daedalus_msg *msg)
{
	unsigned long flags;
	int ret = 0;

	spin_lock_irqsave(&chan->lock, flags);
	if (!chan->connected || chan->conn != conn)
		ret = -ENODEV;
	else if (!kfifo_put(&chan->fifo, *msg))
		ret = -ENOSPC;
	spin_unlock_irqrestore(&chan->lock, flags);

	if (!ret)
		wake_up_interruptible(&chan->wait);
	return ret;
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
	kfifo_reset(&chan->fifo);
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
	unsigned int copied;
	int ret;

	if (count % sizeof(struct daedalus_msg))
		return -EINVAL;
	if (!daedalus_chan_is_connected(chan))
		return -EPROTO;		/* HELLO first */
	if (!count)
		return 0;

	ret = mutex_lock_interruptible(&chan->read_lock);
	if (ret)
		return ret;
	while (kfifo_is_empty(&chan->fifo)) {
		mutex_unlock(&chan->read_lock);
		if (file->f_flags & O_NONBLOCK)
			return -EAGAIN;
		ret = wait_event_interruptible(chan->wait,
					       !kfifo_is_empty(&chan->fifo));
		if (ret)
			return ret;
		ret = mutex_lock_interruptible(&chan->read_lock);
		if (ret)
			return ret;
	}
	/* kfifo: one reader (read_lock) may run beside writers (chan->lock) */
	ret = kfifo_to_user(&chan->fifo, buf, count, &copied);
	mutex_unlock(&chan->read_lock);
	return ret ? ret : copied;
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
	if (!kfifo_is_empty(&chan->fifo))
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
	if (hello.flags || memchr_inv(hello.reserved, 0, sizeof(hello.reserved)))
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
		chan->conn++;
		chan->connected = true;
	}
	spin_unlock_irqrestore(&chan->lock, flags);
	if (ret)
		return ret;

	/* runs while a daemon is connected; daemon_timeout_ms may change */
	schedule_delayed_work(&dev->watchdog, msecs_to_jiffies(10));
	dev_info(&dev->pdev->dev, "daemon connected (protocol %u.%u, %u coded formats)\n",
		 hello.version_major, DAEDALUS_PROTO_VERSION_MINOR,
		 hello.num_coded_formats);
	return 0;
}

static long daedalus_chan_get_buf_fd(struct daedalus_chan *chan,
				     struct daedalus_buf_fd __user *uarg)
{
	struct daedalus_buf_fd req;
	int ret;

	if (copy_from_user(&req, uarg, sizeof(req)))
		return -EFAULT;
	if (!daedalus_chan_is_connected(chan))
		return -EPROTO;

	ret = daedalus_session_get_buf_fd(chan_to_dev(chan), &req);
	if (ret)
		return ret;
	if (copy_to_user(uarg, &req, sizeof(req))) {
		/* the daemon never learns the number: do not leak the fd */
		close_fd(req.fd);
		return -EFAULT;
	}
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
	ret = kfifo_alloc(&chan->fifo, DAEDALUS_FIFO_MSGS, GFP_KERNEL);
	if (ret)
		goto err_mutex;

	chan->misc.minor = MISC_DYNAMIC_MINOR;
	chan->misc.name = DAEDALUS_CHAN_NAME;
	chan->misc.fops = &daedalus_chan_fops;
	chan->misc.mode = 0600;
	chan->misc.parent = &dev->pdev->dev;
	ret = misc_register(&chan->misc);
	if (ret) {
		dev_err(&dev->pdev->dev, "misc_register: %d\n", ret);
		goto err_fifo;
	}
	return 0;

err_fifo:
	kfifo_free(&chan->fifo);
err_mutex:
	mutex_destroy(&chan->read_lock);
	return ret;
}

void daedalus_chan_unregister(struct daedalus_dev *dev)
{
	struct daedalus_chan *chan = &dev->chan;

	misc_deregister(&chan->misc);
	kfifo_free(&chan->fifo);
	mutex_destroy(&chan->read_lock);
}
