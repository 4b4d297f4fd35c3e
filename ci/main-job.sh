#!/usr/bin/env bash
# The main job: builds everything, boots the QEMU guest, loads the module,
# starts the daemon, decodes the sample clips through /dev/videoN with
# daedalus-decode and FFmpeg's *_v4l2m2m, verifies them bit-exact, prints
# frame rates and writes out/main-job/contact-sheet.png.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd -P)"
cd "$repo"
# rustup's cargo when the environment lacks it (CI runs without a login shell)
case ":$PATH:" in *":$HOME/.cargo/bin:"*) ;; *) export PATH="$HOME/.cargo/bin:$PATH" ;; esac
ci/prepare.sh release
t0=$SECONDS
echo "main-job: building the Rust workspace on the host" >&2
cargo build --workspace --release
echo "main-job: building the guest binaries in the Debian 13 root (target/trixie/release)" >&2
DAEDALUS_NO_FETCH=1 ci/trixie-cargo.sh build --release --workspace
echo "main-job: building daedalus_v4l2.ko for the guest kernel" >&2
make -C kernel KDIR="$(ci/guest-kernel/build.sh release)/src"
echo "main-job: builds done ($((SECONDS - t0)) s); booting the guest" >&2
exec python3 ci/harness/main_job.py
