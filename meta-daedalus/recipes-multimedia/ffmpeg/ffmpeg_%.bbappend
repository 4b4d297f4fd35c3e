# AV1 in software: FFmpeg's native "av1" decoder only drives hardware
# accelerators, so the daemon decodes AV1 through libdav1d (meta-multimedia).
PACKAGECONFIG[dav1d] = "--enable-libdav1d,--disable-libdav1d,dav1d"
PACKAGECONFIG:append = " dav1d"
