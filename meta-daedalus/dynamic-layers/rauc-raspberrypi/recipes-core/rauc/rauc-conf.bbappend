# daedalus-image's system.conf replaces meta-rauc-raspberrypi's demo one (this
# layer's priority puts its files/ first in FILESPATH).
FILESEXTRAPATHS:prepend := "${THISDIR}/files:"
