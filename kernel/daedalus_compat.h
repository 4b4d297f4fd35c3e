/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Kernel API changes after 6.12, the oldest kernel this module supports,
 * kept in this one file. An out-of-tree module must build on several
 * kernels, so this is the one place that tests LINUX_VERSION_CODE (and
 * `make check` lets checkpatch accept that here only).
 */
#ifndef DAEDALUS_COMPAT_H
#define DAEDALUS_COMPAT_H

#include <linux/fs.h>
#include <linux/version.h>
#include <media/v4l2-fh.h>

/* 6.13 dropped vb2_ops.wait_prepare/wait_finish: vb2 uses q->lock itself */
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 13, 0)
#define DAEDALUS_VB2_WAIT_OPS	1
#else
#define DAEDALUS_VB2_WAIT_OPS	0
#endif

/* 6.13 turned MODULE_IMPORT_NS() into taking a string */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 13, 0)
#define DAEDALUS_IMPORT_NS_STRING	1
#else
#define DAEDALUS_IMPORT_NS_STRING	0
#endif

/* 6.18 v4l2_fh_add()/v4l2_fh_del() take the file */
static inline void daedalus_fh_add(struct v4l2_fh *fh, struct file *file)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 18, 0)
	v4l2_fh_add(fh, file);
#else
	v4l2_fh_add(fh);
#endif
}

static inline void daedalus_fh_del(struct v4l2_fh *fh, struct file *file)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 18, 0)
	v4l2_fh_del(fh, file);
#else
	v4l2_fh_del(fh);
#endif
}

#endif /* DAEDALUS_COMPAT_H */
