// SPDX-License-Identifier: GPL-2.0
/*
 * daedalus-v4l2: platform device, probe/remove, media controller and module
 * parameters.
 */

#include <linux/dma-mapping.h>
#include <linux/module.h>
#include <linux/platform_device.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <media/videobuf2-dma-contig.h>
#include <media/videobuf2-vmalloc.h>

#include "daedalus.h"
#include "daedalus_compat.h"

static char *mem = "dma-contig";
module_param(mem, charp, 0444);
MODULE_PARM_DESC(mem, "buffer memory: \"dma-contig\" (default, what a display can import) or \"vmalloc\"");

unsigned int daedalus_timeout_ms = 2000;
module_param_named(daemon_timeout_ms, daedalus_timeout_ms, uint, 0644);
MODULE_PARM_DESC(daemon_timeout_ms,
		 "ms the daemon may hold bitstream without answering before its session fails (0 = never)");

unsigned int daedalus_max_sessions = 32;
module_param_named(max_sessions, daedalus_max_sessions, uint, 0644);
MODULE_PARM_DESC(max_sessions,
		 "decoding sessions (streaming file handles) at once; OUTPUT STREAMON past it gets EBUSY (0 = no limit)");

unsigned int daedalus_first_session_id = 1;
module_param_named(first_session_id, daedalus_first_session_id, uint, 0444);
MODULE_PARM_DESC(first_session_id,
		 "testing: the first session id handed out (ids wrap from 2147483647 to 1)");

static int daedalus_probe(struct platform_device *pdev)
{
	struct daedalus_dev *dev;
	int ret;

	dev = kzalloc(sizeof(*dev), GFP_KERNEL);
	if (!dev)
		return -ENOMEM;
	dev->pdev = pdev;

	if (sysfs_streq(mem, "vmalloc")) {
		dev->mem_ops = &vb2_vmalloc_memops;
	} else if (sysfs_streq(mem, "dma-contig")) {
		dev->mem_ops = &vb2_dma_contig_memops;
		/* 32 bits: what every display controller on a Pi can reach */
		ret = dma_coerce_mask_and_coherent(&pdev->dev,
						   DMA_BIT_MASK(32));
		if (ret) {
			dev_err(&pdev->dev, "no usable DMA mask: %d\n", ret);
			goto err_free;
		}
	} else {
		dev_err(&pdev->dev, "mem=%s: use dma-contig or vmalloc\n", mem);
		ret = -EINVAL;
		goto err_free;
	}

	daedalus_sessions_init(dev);

	/*
	 * The media device is initialised before the v4l2_device is registered
	 * so v4l2-core binds the entities into it; it is registered last so
	 * userspace only ever sees the complete graph.
	 */
	dev->mdev.dev = &pdev->dev;
	strscpy(dev->mdev.model, DAEDALUS_CARD, sizeof(dev->mdev.model));
	strscpy(dev->mdev.bus_info, "platform:" DAEDALUS_NAME,
		sizeof(dev->mdev.bus_info));
	media_device_init(&dev->mdev);
	dev->v4l2_dev.mdev = &dev->mdev;

	ret = v4l2_device_register(&pdev->dev, &dev->v4l2_dev);
	if (ret)
		goto err_mdev;

	ret = daedalus_video_register(dev);
	if (ret)
		goto err_v4l2;

	ret = media_device_register(&dev->mdev);
	if (ret) {
		v4l2_err(&dev->v4l2_dev, "media_device_register: %d\n", ret);
		goto err_video;
	}

	ret = daedalus_chan_register(dev);
	if (ret)
		goto err_media;

	platform_set_drvdata(pdev, dev);
	v4l2_info(&dev->v4l2_dev, "decoder /dev/video%d, channel /dev/%s, %s memory\n",
		  dev->vdev.num, DAEDALUS_CHAN_NAME,
		  dev->mem_ops == &vb2_vmalloc_memops ? "vmalloc" : "dma-contig");
	return 0;

err_media:
	media_device_unregister(&dev->mdev);
err_video:
	daedalus_video_unregister(dev);
err_v4l2:
	v4l2_device_unregister(&dev->v4l2_dev);
err_mdev:
	media_device_cleanup(&dev->mdev);
	daedalus_sessions_cleanup(dev);
err_free:
	kfree(dev);
	return ret;
}

static void daedalus_remove(struct platform_device *pdev)
{
	struct daedalus_dev *dev = platform_get_drvdata(pdev);

	daedalus_chan_unregister(dev);
	media_device_unregister(&dev->mdev);
	daedalus_video_unregister(dev);
	v4l2_device_unregister(&dev->v4l2_dev);
	media_device_cleanup(&dev->mdev);
	daedalus_sessions_cleanup(dev);
	kfree(dev);
}

/*
 * Allocated by the driver core, which frees it when the last reference
 * goes: vb2-dma-contig buffers hold one each, and an exported dma-buf
 * (EXPBUF to a display, or an fd the daemon still has) may keep one after
 * every file handle is closed and this module is gone.
 */
static struct platform_device *daedalus_pdev;

static struct platform_driver daedalus_pdrv = {
	.probe		= daedalus_probe,
	.remove		= daedalus_remove,
	.driver		= {
		.name	= DAEDALUS_NAME,
		/*
		 * Open file handles point into the device; only module
		 * unload (impossible while they are open) may unbind it.
		 */
		.suppress_bind_attrs = true,
	},
};

static int __init daedalus_init(void)
{
	int ret;

	BUILD_BUG_ON(sizeof(struct daedalus_msg) != DAEDALUS_MSG_SIZE);

	if (!daedalus_first_session_id || daedalus_first_session_id > INT_MAX)
		return -EINVAL;

	ret = platform_driver_register(&daedalus_pdrv);
	if (ret)
		return ret;

	daedalus_pdev = platform_device_register_simple(DAEDALUS_NAME,
							PLATFORM_DEVID_NONE,
							NULL, 0);
	if (IS_ERR(daedalus_pdev)) {
		platform_driver_unregister(&daedalus_pdrv);
		return PTR_ERR(daedalus_pdev);
	}
	return 0;
}

static void __exit daedalus_exit(void)
{
	platform_device_unregister(daedalus_pdev);
	platform_driver_unregister(&daedalus_pdrv);
}

module_init(daedalus_init);
module_exit(daedalus_exit);

MODULE_DESCRIPTION("V4L2 stateful decoder backed by a userspace decode daemon");
MODULE_AUTHOR("daedalus-v4l2 developers");
MODULE_LICENSE("GPL");
#if DAEDALUS_IMPORT_NS_STRING
MODULE_IMPORT_NS("DMA_BUF");
#else
MODULE_IMPORT_NS(DMA_BUF);
#endif
