SUMMARY = "daedalus-v4l2 stateful V4L2 M2M decoder kernel module"
DESCRIPTION = "Kernel half of daedalus-v4l2: a standard stateful V4L2 memory-to-memory \
               decoder (/dev/videoN, /dev/mediaN) whose jobs are decoded by the \
               daedalus-v4l2d daemon through the /dev/daedalus-v4l2 channel device."
HOMEPAGE = "https://github.com/daedalus-v4l2/daedalus-v4l2"
BUGTRACKER = "https://github.com/daedalus-v4l2/daedalus-v4l2/issues"
SECTION = "kernel/modules"
LICENSE = "GPL-2.0-only"
# The repository has no top-level license file yet; every source carries a
# GPL-2.0-only SPDX header.
# nooelint: oelint.var.licenseremotefile
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/GPL-2.0-only;md5=801f80980d171dd6425610833a22dbe6"
CVE_PRODUCT = "daedalus-v4l2"

SRC_URI = "file://kernel \
           file://rootfs-overlay/usr/lib/modules-load.d/daedalus-v4l2.conf \
           file://rootfs-overlay/usr/lib/udev/rules.d/70-daedalus-v4l2.rules"

S = "${DAEDALUS_UNPACKDIR}/kernel"

inherit module daedalus_src

# Build with Kbuild directly (kernel/Kbuild) against the kernel this image
# ships: the module is rebuilt whenever that kernel changes.
# (module.bbclass adds O=, CC=, LD=, and MODLIB= for the install into ${D}.)
MAKE_TARGETS = "-C ${STAGING_KERNEL_DIR} M=${S} modules"
MODULES_INSTALL_TARGET = "-C ${STAGING_KERNEL_DIR} M=${S} modules_install"

# file://kernel copies the checkout's directory as it is, with whatever a
# developer built there for another kernel: start from a clean tree.
do_configure() {
    unset CFLAGS CPPFLAGS CXXFLAGS LDFLAGS
    oe_runmake -C ${STAGING_KERNEL_DIR} O=${STAGING_KERNEL_BUILDDIR} M=${S} clean
}

# Autoload at boot and device permissions come from the shared rootfs-overlay
# (the same files the Buildroot tree and the Debian package install), rather
# than KERNEL_MODULE_AUTOLOAD, so all three images behave the same.
do_install:append() {
    install -d ${D}${nonarch_libdir}/modules-load.d ${D}${nonarch_base_libdir}/udev/rules.d
    install -m 0644 ${DAEDALUS_UNPACKDIR}/rootfs-overlay/usr/lib/modules-load.d/daedalus-v4l2.conf \
        ${D}${nonarch_libdir}/modules-load.d/
    install -m 0644 ${DAEDALUS_UNPACKDIR}/rootfs-overlay/usr/lib/udev/rules.d/70-daedalus-v4l2.rules \
        ${D}${nonarch_base_libdir}/udev/rules.d/
}

FILES:${PN} += "${nonarch_libdir}/modules-load.d/daedalus-v4l2.conf \
                ${nonarch_base_libdir}/udev/rules.d/70-daedalus-v4l2.rules"
