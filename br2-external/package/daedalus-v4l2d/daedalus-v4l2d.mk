################################################################################
#
# daedalus-v4l2d
#
################################################################################

DAEDALUS_V4L2D_VERSION = 0.1.0
DAEDALUS_V4L2D_SITE = $(DAEDALUS_SRCDIR)
DAEDALUS_V4L2D_SITE_METHOD = local
DAEDALUS_V4L2D_LICENSE = GPL-2.0-only
# Only the Cargo workspace (and the UAPI header proto's bindgen reads); never
# a developer's target/ directory or the image-builder trees.
DAEDALUS_V4L2D_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = \
	--exclude=/target --exclude=/ci --exclude=/br2-external \
	--exclude=/meta-daedalus --exclude=/docs --exclude=/.cargo

# ffmpeg-sys-next finds FFmpeg with pkg-config and, like daedalus-proto,
# generates bindings with bindgen in its build script: bindgen loads the
# host libclang and must parse the target's headers.
DAEDALUS_V4L2D_DEPENDENCIES = ffmpeg dav1d host-clang host-pkgconf
DAEDALUS_V4L2D_CARGO_ENV = \
	PKG_CONFIG_ALLOW_CROSS=1 \
	LIBCLANG_PATH=$(HOST_DIR)/lib \
	BINDGEN_EXTRA_CLANG_ARGS="--sysroot=$(STAGING_DIR) --target=$(GNU_TARGET_NAME)"
DAEDALUS_V4L2D_CARGO_BUILD_OPTS = --workspace

# A local package is not downloaded, so Buildroot's cargo download
# post-processing never runs: vendor the crates of Cargo.lock here, the same
# way (VENDOR/ plus .cargo/config.toml), so the build itself stays offline.
# Done before the build (not after the rsync) so host-rustc exists.
define DAEDALUS_V4L2D_CARGO_VENDOR
	mkdir -p $(@D)/.cargo $(BR_CARGO_HOME)
	cd $(@D) && $(HOST_MAKE_ENV) $(PKG_COMMON_CARGO_ENV) \
		flock $(BR_CARGO_HOME)/.br-lock \
		cargo vendor --manifest-path Cargo.toml --locked VENDOR \
		> $(@D)/.cargo/config.toml
endef
DAEDALUS_V4L2D_PRE_BUILD_HOOKS += DAEDALUS_V4L2D_CARGO_VENDOR

DAEDALUS_V4L2D_RELEASE_DIR = $(@D)/target/$(RUSTC_TARGET_NAME)/$(if $(BR2_ENABLE_DEBUG),debug,release)
DAEDALUS_V4L2D_BINS = daedalus-v4l2d \
	$(if $(BR2_PACKAGE_DAEDALUS_V4L2D_TOOLS),daedalus-decode daedalus-bench) \
	$(if $(BR2_PACKAGE_DAEDALUS_V4L2D_CHAN_FAULT),daedalus-chan-fault)

define DAEDALUS_V4L2D_INSTALL_TARGET_CMDS
	$(foreach bin,$(DAEDALUS_V4L2D_BINS), \
		$(INSTALL) -D -m 0755 $(DAEDALUS_V4L2D_RELEASE_DIR)/$(bin) \
			$(TARGET_DIR)/usr/bin/$(bin)$(sep))
	$(INSTALL) -D -m 0755 $(DAEDALUS_V4L2D_RELEASE_DIR)/libdaedalus_fourier_cpu.so \
		$(TARGET_DIR)/usr/lib/daedalus/libdaedalus_fourier_cpu.so
endef

# The daemon's system user (also in rootfs-overlay's sysusers.d, for
# systemd-sysusers); created at build time so a read-only rootfs works.
define DAEDALUS_V4L2D_USERS
	daedalus -1 daedalus -1 * - - - daedalus-v4l2 userspace video decoder
endef

$(eval $(cargo-package))
