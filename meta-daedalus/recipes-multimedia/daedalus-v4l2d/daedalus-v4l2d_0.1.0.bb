SUMMARY = "daedalus-v4l2 userspace decoder daemon, compute plugin and V4L2 test tools"
SUMMARY:daedalus-tools = "daedalus-decode and daedalus-bench: V4L2 stateful decoder clients"
SUMMARY:daedalus-chan-fault = "Sends hostile messages on /dev/daedalus-v4l2 (kernel robustness test)"
SUMMARY:daedalus-fourier-cpu = "CPU reference daedalus-fourier plugin for daedalus-v4l2d"
DESCRIPTION = "daedalus-v4l2d decodes the jobs of the daedalus_v4l2 kernel module with \
               FFmpeg (AV1 through dav1d), writing frames straight into the applications' \
               V4L2 buffers. The same Cargo workspace builds the CPU daedalus-fourier \
               plugin and the daedalus-decode and daedalus-bench V4L2 clients."
HOMEPAGE = "https://github.com/daedalus-v4l2/daedalus-v4l2"
BUGTRACKER = "https://github.com/daedalus-v4l2/daedalus-v4l2/issues"
SECTION = "multimedia"
# The repository has no top-level license file yet; every source carries
# GPL-2.0-only SPDX headers.
LICENSE = "GPL-2.0-only"
# nooelint: oelint.var.licenseremotefile
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/GPL-2.0-only;md5=801f80980d171dd6425610833a22dbe6"
CVE_PRODUCT = "daedalus-v4l2"

# ffmpeg-sys-next links FFmpeg found through pkg-config; it and daedalus-proto
# run bindgen in their build scripts, which loads libclang at build time
# (clang-native: meta-clang on scarthgap, oe-core from styhead on).
DEPENDS += "clang-native ffmpeg"

# The workspace, as laid out in the repository (proto's build script reads
# ../kernel/include/uapi, the channel UAPI header), and the files of
# rootfs-overlay/ that belong to the daemon.
SRC_URI = "file://Cargo.toml;subdir=${BP} \
           file://Cargo.lock;subdir=${BP} \
           file://proto;subdir=${BP} \
           file://daemon;subdir=${BP} \
           file://fourier-cpu;subdir=${BP} \
           file://tools;subdir=${BP} \
           file://kernel/include;subdir=${BP} \
           file://rootfs-overlay/etc/daedalus/daedalus-v4l2d.toml \
           file://rootfs-overlay/usr/lib/systemd/system/daedalus-v4l2d.service \
           file://rootfs-overlay/usr/lib/sysusers.d/daedalus.conf"

require ${BPN}-crates.inc

S = "${DAEDALUS_UNPACKDIR}/${BP}"

# One recipe for the whole Cargo workspace: one Cargo.lock, one crates.inc,
# one build of the dependency tree (bindgen, ffmpeg-sys) for all binaries.
inherit cargo cargo-update-recipe-crates daedalus_src pkgconfig systemd useradd

export LIBCLANG_PATH = "${STAGING_LIBDIR_NATIVE}"
# bindgen parses target headers (FFmpeg, linux/types.h) as the target sees them.
export BINDGEN_EXTRA_CLANG_ARGS = "--sysroot=${STAGING_DIR_TARGET} --target=${HOST_SYS}"

CARGO_BUILD_FLAGS += "--workspace"

do_install() {
    rel="${B}/target/${CARGO_TARGET_SUBDIR}"
    install -d ${D}${bindir} ${D}${libdir}/daedalus
    for bin in daedalus-v4l2d daedalus-decode daedalus-bench daedalus-chan-fault; do
        install -m 0755 "$rel/$bin" ${D}${bindir}/
    done
    install -m 0755 "$rel/libdaedalus_fourier_cpu.so" ${D}${libdir}/daedalus/

    overlay="${DAEDALUS_UNPACKDIR}/rootfs-overlay"
    install -d ${D}${sysconfdir}/daedalus ${D}${systemd_system_unitdir} ${D}${nonarch_libdir}/sysusers.d
    install -m 0644 $overlay/etc/daedalus/daedalus-v4l2d.toml ${D}${sysconfdir}/daedalus/
    install -m 0644 $overlay/usr/lib/systemd/system/daedalus-v4l2d.service ${D}${systemd_system_unitdir}/
    install -m 0644 $overlay/usr/lib/sysusers.d/daedalus.conf ${D}${nonarch_libdir}/sysusers.d/
}

PACKAGES =+ "daedalus-tools daedalus-chan-fault daedalus-fourier-cpu"

FILES:${PN} += "${nonarch_libdir}/sysusers.d/daedalus.conf"
FILES:daedalus-tools += "${bindir}/daedalus-decode ${bindir}/daedalus-bench"
# Hostile-message tester for the channel device: test images only.
FILES:daedalus-chan-fault += "${bindir}/daedalus-chan-fault"
FILES:daedalus-fourier-cpu += "${libdir}/daedalus/libdaedalus_fourier_cpu.so"

CONFFILES:${PN} = "${sysconfdir}/daedalus/daedalus-v4l2d.toml"

RRECOMMENDS:${PN} = "kernel-module-daedalus-v4l2"

SYSTEMD_SERVICE:${PN} = "daedalus-v4l2d.service"

# The user is also declared in sysusers.d (installed above) for systems that
# run systemd-sysusers; creating it at rootfs time keeps read-only roots working.
USERADD_PACKAGES = "${PN}"
USERADD_PARAM:${PN} = "--system --user-group --no-create-home --home-dir /nonexistent \
                       --shell ${base_sbindir}/nologin daedalus"
