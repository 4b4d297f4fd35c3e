#!/bin/bash
# Runs FFmpeg's v4l2m2m decoder RUNS times on each resolution-change stream
# and prints what came out (docs/clients.md, FFmpeg); the suite leaves these
# streams out of test_40 because the result depends on timing. FFmpeg 5.1
# runs in the Debian 12 side root, which must be shared into the guest:
#   ci/qemu/run-guest.sh --share "$(ci/bookworm-root/build.sh):ro" -- \
#       ci/tests/guest/helpers/ffmpeg-reschange-runs.sh [RUNS] [7.1|5.1]...
set -u
runs=${1:-10}
shift || true
versions=("${@:-7.1}")
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../../.." && pwd)"
cd "$repo" || exit 1
modprobe -a v4l2-mem2mem videobuf2-dma-contig videobuf2-vmalloc && insmod kernel/daedalus_v4l2.ko || exit 1
python3 "$here/start-daemon.py" --log /tmp/daedalus-v4l2d.log --pidfile /run/daedalus-v4l2d.pid --timeout 60 -- \
	target/trixie/release/daedalus-v4l2d --config ci/tests/guest/daedalus-v4l2d.test.toml || exit 1
streams=$(dirname "$(ls /root/.cache/daedalus-v4l2/streams/*/h264-reschange.h264 | head -1)")
for ver in "${versions[@]}"; do
	prefix=()
	if [ "$ver" = 5.1 ]; then
		root=$(ls -d /root/.cache/daedalus-v4l2/guest-root/bookworm-*/root | head -1)
		sh "$here/bookworm-mount.sh" "$root" /run/bookworm "$repo" "$streams" || exit 1
		mkdir -p /tmp/bookworm-home
		prefix=(chroot /run/bookworm /usr/bin/env HOME=/tmp/bookworm-home)
	fi
	for name in h264-reschange vp9-reschange; do
		codec=${name%%-*} ext=h264
		[ "$codec" = vp9 ] && ext=ivf
		for run in $(seq "$runs"); do
			rm -f /tmp/reschange.nv12
			"${prefix[@]}" ffmpeg -nostdin -hide_banner -loglevel error -c:v "${codec}_v4l2m2m" -i "$streams/$name.$ext" \
				-fps_mode passthrough -noautoscale -pix_fmt nv12 -f rawvideo -y /tmp/reschange.nv12 >/tmp/reschange.log 2>&1
			rc=$?
			echo "ffmpeg $ver $name run $run: exit $rc, $(python3 "$here/reschange_outcome.py" /tmp/reschange.nv12 \
				"$streams/manifest.json" "$name") $(grep -m1 Assertion /tmp/reschange.log)"
		done
	done
done
