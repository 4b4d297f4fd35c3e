#!/usr/bin/env bash
# Installs everything the main job and the test suite need on a fresh Debian 12
# host. Idempotent: a second run only checks. Thin glue, by design.
set -euo pipefail

need_root() { if [ "$(id -u)" -ne 0 ]; then exec sudo -E "$0" "$@"; fi; }
need_root "$@"

stamp_dir="${HOME}/.cache/daedalus-v4l2"
mkdir -p "$stamp_dir"
stamp="$stamp_dir/host-setup.v5"
if [ -e "$stamp" ] && [ "${DAEDALUS_FORCE_SETUP:-0}" != 1 ]; then
	echo "host set-up: already done ($stamp)"
	exit 0
fi

export DEBIAN_FRONTEND=noninteractive

echo "host set-up: adding bookworm-backports and arm64 architecture"
if ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
	cat >/etc/apt/sources.list.d/bookworm-backports.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
dpkg --add-architecture arm64
apt-get update -q

echo "host set-up: installing packages"
apt-get install -y -q --no-install-recommends \
	build-essential bc bison flex libelf-dev libssl-dev cpio kmod xz-utils \
	rsync python3 python3-venv python3-pip ca-certificates \
	clang libclang-dev pkg-config \
	libavcodec-dev libavformat-dev libavutil-dev libswscale-dev \
	libavfilter-dev libavdevice-dev libswresample-dev \
	ffmpeg v4l-utils \
	gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
	gstreamer1.0-plugins-bad gstreamer1.0-libav \
	gcc-aarch64-linux-gnu libc6-dev-arm64-cross dwarves \
	dkms mmdebstrap debootstrap systemd-container \
	imagemagick busybox-static \
	chrpath diffstat lzop gawk texinfo locales \
	python3-magic flake8 shellcheck
apt-get install -y -q --no-install-recommends -t bookworm-backports \
	linux-source-6.12 linux-libc-dev qemu-system-x86 qemu-system-arm qemu-utils \
	qemu-user

echo "host set-up: python test tools (pytest, labgrid, oelint-adv, kas)"
venv="$stamp_dir/venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q 'pytest>=8,<9' 'labgrid>=24,<26' 'oelint-adv>=6,<9' 'kas>=4,<6'

touch "$stamp"
echo "host set-up: done"
