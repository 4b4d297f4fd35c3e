# Recipes of this layer build the sources of the daedalus-v4l2 checkout the
# layer lives in (DAEDALUS_SRCDIR, set in conf/layer.conf): file:// entries
# are looked up there, so SRC_URI names repository paths such as
# file://kernel or file://rootfs-overlay/....
# It is a class, not a bbappend, because the recipes are ours and the
# directory is the repository, not a files/ directory next to a recipe.
# nooelint: oelint.vars.fileextrapaths,oelint.vars.outofcontext
FILESEXTRAPATHS:prepend := "${DAEDALUS_SRCDIR}:"

# Where do_unpack puts file:// sources: WORKDIR on scarthgap, UNPACKDIR
# (WORKDIR/sources) from styhead on.
DAEDALUS_UNPACKDIR = "${@d.getVar('UNPACKDIR') or d.getVar('WORKDIR')}"
