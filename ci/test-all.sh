#!/usr/bin/env bash
# Every test: host checks (cargo fmt/clippy/test on the host and in the Debian 13
# root, the module for the guest kernel and Debian arm64/arm64-16k, checkpatch,
# packaging and layer checks), then the guest suite in QEMU (release kernel),
# a subset on the QEMU aarch64 target (Debian's 16K-page kernel, unless
# DAEDALUS_AARCH64=0), then the debug kernel's KASAN/lockdep/kmemleak run
# unless DAEDALUS_DEBUG_KERNEL=0. Ends with exactly one line `N passed, M failed`.
set -uo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd -P)"
cd "$repo" || exit 1
# rustup's cargo when the environment lacks it (CI runs without a login shell)
case ":$PATH:" in *":$HOME/.cargo/bin:"*) ;; *) export PATH="$HOME/.cargo/bin:$PATH" ;; esac
venv="$HOME/.cache/daedalus-v4l2/venv"
debug="${DAEDALUS_DEBUG_KERNEL:-1}"
aarch64="${DAEDALUS_AARCH64:-1}"

# each part's wall time, for the 90-minute CI budget (README)
phase() { echo "test-all: [$(date -u +%H:%M:%S), +$((SECONDS / 60)) min] $*"; }
# a fresh clone starts from the last run's Rust builds (CI keeps ~/.cache)
ci/cargo-target-cache.sh restore
phase "set-up (ci/prepare.sh)"
if ! ci/prepare.sh --tests release; then
	echo "test-all: set-up failed (see above)"
	echo "0 passed, 1 failed"
	exit 1
fi
mkdir -p out
if [ "$debug" = 1 ]; then
	# Cold, the debug kernel takes longer to build than the release suite
	# takes to run: build it beside the suite, niced so the guest (whose
	# timeouts matter) gets the CPU first. Cached: a no-op when warm.
	echo "test-all: building the debug guest kernel in the background (log out/prepare/debug-kernel.log)"
	nice -n 15 ci/guest-kernel/build.sh debug >out/prepare/debug-kernel.log 2>&1 &
	debug_kernel=$!
fi
rm -f out/junit*.xml
pytest=("$venv/bin/python" -m pytest -c ci/tests/pytest.ini)
phase "host checks and the guest suite (release kernel)"
"${pytest[@]}" --junitxml=out/junit.xml ci/tests/host ci/tests/guest
reports=(out/junit.xml)
if [ "$aarch64" = 1 ]; then
	# Before the debug part: cold, the debug kernel is still building and
	# this fills the wait. TCG emulates every arm64 instruction, so a small
	# subset: boot, page size, module load, compliance with the daemon, one
	# 8-bit 320x240 decode per codec with our client and with FFmpeg's
	# *_v4l2m2m, zero-copy YUV420 (VP9 640x480), unload. The module is the one the host tests
	# cross-built for the arm64-16k headers; the daemon and tools come from
	# the arm64 trixie .deb (bins.sh; if it is missing the daemon tests fail).
	reports+=(out/junit-aarch64.xml)
	phase "guest suite subset on the QEMU aarch64 target (Debian's 16K-page kernel, TCG)"
	ci/guest-aarch64/bins.sh >/dev/null
	DAEDALUS_TARGET=qemu-aarch64 "${pytest[@]}" --junitxml=out/junit-aarch64.xml \
		-k "test_guest_userspace or test_page_size or test_load_creates_nodes or test_unload_load_cycles or test_compliance_video or test_decode_bit_exact and 320x240 and not 10bit or test_ffmpeg_v4l2m2m_bit_exact and 320x240 or test_decode_yuv420_zero_copy and 640x480 or test_stop_and_unload" \
		ci/tests/guest
fi
if [ "$debug" = 1 ]; then
	# the debug kernel is slow under TCG: the module, one decode per codec,
	# the fault tester and the unload, with KASAN, lockdep and kmemleak on.
	# Not plain v4l2-ctl --stream-from: after its STOP v4l2-ctl gives up when
	# 0.5 s pass without an event, which the debug kernel under TCG exceeds
	# (H.264 320x240: 3 of 3 runs, twice; its kernel paths are covered by the
	# fault tester). A failed kernel or module build leaves no report, which
	# the summary counts as a failure.
	reports+=(out/junit-debug.xml)
	t0=$SECONDS
	phase "waiting for the debug kernel build (tail -f out/prepare/debug-kernel.log)"
	if wait "$debug_kernel"; then
		echo "test-all: waited $((SECONDS - t0)) s for the debug kernel"
		phase "guest suite on the debug kernel (KASAN, lockdep, kmemleak)"
		kdir_debug="$(ci/guest-kernel/build.sh debug)/src"
		# the module for the debug kernel (its struct module differs), built
		# in a copy of kernel/ so kernel/daedalus_v4l2.ko stays the release
		# kernel's: the debug guest loads out/kbuild/debug/ (target.py)
		kbuild_debug=out/kbuild/debug
		rm -rf "$kbuild_debug"; mkdir -p out/kbuild; cp -r kernel "$kbuild_debug"
		make -C "$kbuild_debug" KDIR="$kdir_debug" clean >/dev/null
		if make -C "$kbuild_debug" KDIR="$kdir_debug" W=1 -s; then
			# "=debug": pytest's early argument scan would take a separate
			# "debug" for a test path and never load the conftest that
			# defines the option
			"${pytest[@]}" --junitxml=out/junit-debug.xml --kernel-variant=debug \
				-k "test_load or test_unload_load or 320x240 and bit_exact and not plain_stream_from or chan_fault or kernel_flow and not slow_decode and not ids_wrap or stop_and_unload" \
				ci/tests/guest
		else
			echo "test-all: module build for the debug kernel failed"
		fi
	else
		echo "test-all: the debug kernel build failed; its log ends:"
		tail -n 30 out/prepare/debug-kernel.log
	fi
fi
phase "saving the Rust builds (ci/cargo-target-cache.sh)"
ci/cargo-target-cache.sh save || echo "test-all: target/ not saved (the next fresh clone builds it again)"
phase "done"
exec python3 -m ci.harness.summary "${reports[@]}"
