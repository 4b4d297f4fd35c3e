# Recipes of this layer build the sources of the daedalus-v4l2 checkout the
# layer lives in (DAEDALUS_SRCDIR, set in conf/layer.conf): file:// entries
# are looked up there, so SRC_URI names repository paths such as
# file://kernel or file://rootfs-overlay/....

FILESEXTRAPATHS:prepend = "${DAEDALUS_SRCDIR}:"

# Where do_unpack puts file:// sources: WORKDIR on scarthgap, UNPACKDIR
# (WORKDIR/sources) from styhead on.
DAEDALUS_UNPACKDIR = "${@d.getVar('UNPACKDIR') or d.getVar('WORKDIR')}"
