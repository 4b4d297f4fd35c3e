################################################################################
#
# daedalus-v4l2-module
#
################################################################################

DAEDALUS_V4L2_MODULE_VERSION = 0.1.0
DAEDALUS_V4L2_MODULE_SITE = $(DAEDALUS_SRCDIR)/kernel
DAEDALUS_V4L2_MODULE_SITE_METHOD = local
DAEDALUS_V4L2_MODULE_LICENSE = GPL-2.0-only
# Not what a developer built in the checkout for another kernel.
DAEDALUS_V4L2_MODULE_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = \
	--exclude='*.o' --exclude='*.ko' --exclude='*.mod' --exclude='*.mod.c' \
	--exclude='.*.cmd' --exclude=modules.order --exclude=Module.symvers

# What the module builds on: V4L2 with the media controller and the mem2mem
# framework. v4l2-mem2mem and the videobuf2 allocators cannot be enabled by
# themselves, only selected by a driver: vim2m (a test driver, built as a
# module and never loaded) selects them. The Raspberry Pi kernel already has
# them through its own codec drivers; videobuf2-dma-contig for other kernels
# comes from the board's kernel configuration.
define DAEDALUS_V4L2_MODULE_LINUX_CONFIG_FIXUPS
	$(call KCONFIG_ENABLE_OPT,CONFIG_MEDIA_SUPPORT)
	$(call KCONFIG_ENABLE_OPT,CONFIG_MEDIA_CONTROLLER)
	$(call KCONFIG_ENABLE_OPT,CONFIG_VIDEO_DEV)
	$(call KCONFIG_ENABLE_OPT,CONFIG_DMA_SHARED_BUFFER)
	$(call KCONFIG_ENABLE_OPT,CONFIG_MEDIA_TEST_SUPPORT)
	$(call KCONFIG_ENABLE_OPT,CONFIG_V4L_TEST_DRIVERS)
	$(call KCONFIG_SET_OPT,CONFIG_VIDEO_VIM2M,m)
endef

$(eval $(kernel-module))
$(eval $(generic-package))
