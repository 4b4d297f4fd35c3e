#!/usr/bin/env bash
# Every test: host checks (cargo fmt/clippy/test on the host and in the Debian 13
# root, the module for the guest kernel and Debian arm64/arm64-16k, checkpatch,
# packaging and layer checks), then the guest suite in QEMU (release kernel,
# then the debug kernel's KASAN/lockdep/kmemleak run unless
# DAEDALUS_DEBUG_KERNEL=0). Ends with exactly one line `N passed, M failed`.
set -uo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd -P)"
cd "$repo"
# rustup's cargo when the environment lacks it (CI runs without a login shell)
case ":$PATH:" in *":$HOME/.cargo/bin:"*) ;; *) export PATH="$HOME/.cargo/bin:$PATH" ;; esac
venv="$HOME/.cache/daedalus-v4l2/venv"
debug="${DAEDALUS_DEBUG_KERNEL:-1}"
variants=(release)
[ "$debug" = 1 ] && variants+=(debug)

if ! ci/prepare.sh "${variants[@]}"; then
	echo "test-all: set-up failed (see above)"
	echo "0 passed, 1 failed"
	exit 1
fi
mkdir -p out
rm -f out/junit*.xml
pytest=("$venv/bin/python" -m pytest -c ci/tests/pytest.ini)
echo "test-all: host checks and the guest suite (release kernel)"
"${pytest[@]}" --junitxml=out/junit.xml ci/tests/host ci/tests/guest
reports=(out/junit.xml)
if [ "$debug" = 1 ]; then
	# the debug kernel is slow under TCG: the module, one decode per codec,
	# the fault tester and the unload, with KASAN, lockdep and kmemleak on
	echo "test-all: guest suite on the debug kernel (KASAN, lockdep, kmemleak)"
	# the guest loads kernel/daedalus_v4l2.ko: rebuild it for the debug
	# kernel (its struct module differs); a failed build leaves no report,
	# which the summary counts as a failure
	kdir_debug="$(ci/guest-kernel/build.sh debug)/src"
	make -C kernel KDIR="$kdir_debug" clean >/dev/null
	make -C kernel KDIR="$kdir_debug" W=1 -s || echo "test-all: module build for the debug kernel failed"
	# "=debug": pytest's early argument scan would take a separate "debug"
	# for a test path and never load the conftest that defines the option
	"${pytest[@]}" --junitxml=out/junit-debug.xml --kernel-variant=debug \
		-k "test_load or test_unload_load or 320x240 and bit_exact or chan_fault or stop_and_unload" \
		ci/tests/guest
	reports+=(out/junit-debug.xml)
fi
exec python3 -m ci.harness.summary "${reports[@]}"
