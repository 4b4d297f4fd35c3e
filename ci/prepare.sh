#!/usr/bin/env bash
# The set-up both top-level commands share, each step cached: host packages,
# the guest kernel, the Debian 13 guest root, the Debian 12 side root, the
# test streams, the Rust crates, the packaging roots and the arm64 headers.
# Prints one line per step with its time.
#
# Cold, the guest kernel build is the long pole and uses every core; the other
# steps are mostly downloads and unpacking, so they run beside it (each with
# its own log under out/prepare/) instead of after it.
#   usage: ci/prepare.sh [--tests] [release|debug]...
#     variants: guest kernels to build (default release); --tests adds what
#     only the test command needs (packaging roots, arm64 headers, the
#     aarch64 guest's Debian kernel and arm64 root)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd -P)"
cd "$repo"
# rustup's cargo when the environment lacks it (CI runs without a login shell)
case ":$PATH:" in *":$HOME/.cargo/bin:"*) ;; *) export PATH="$HOME/.cargo/bin:$PATH" ;; esac
tests=0
if [ "${1:-}" = --tests ]; then tests=1; shift; fi
variants=("$@")
[ "${#variants[@]}" -gt 0 ] || variants=(release)
logs="$repo/out/prepare"
mkdir -p "$logs"

step() {
	local what=$1; shift
	local t0=$SECONDS
	echo "prepare: $what ..." >&2
	"$@" >/dev/null
	echo "prepare: $what done ($((SECONDS - t0)) s)" >&2
}

# background steps: name -> pid; each writes out/prepare/<name>.log
declare -A side=()
beside() {
	local name=$1; shift
	echo "prepare: $name (beside the kernel build, log out/prepare/$name.log) ..." >&2
	(
		t0=$SECONDS
		if "$@" >"$logs/$name.log" 2>&1; then
			echo "prepare: $name done ($((SECONDS - t0)) s)" >&2
		else
			rc=$?
			echo "prepare: $name FAILED (exit $rc) after $((SECONDS - t0)) s; its log ends:" >&2
			tail -n 20 "$logs/$name.log" >&2
			exit "$rc"
		fi
	) &
	side[$name]=$!
}

step "host packages (ci/setup-host.sh)" ci/setup-host.sh

beside guest-root ci/guest-root/build.sh
# GStreamer 1.22 and FFmpeg 5.1 for the player tests (ci/tests/guest/userlands.py)
beside bookworm-root ci/bookworm-root/build.sh
beside streams python3 -m ci.harness.streams
beside crates cargo fetch
if [ "$tests" = 1 ]; then
	# the arm64 headers, then the aarch64 guest: Debian's 16K-page kernel of
	# the same ABI (kernel.sh asks fetch-headers.sh, so not in parallel with
	# it) and its arm64 root (mmdebstrap under qemu-user)
	# (DAEDALUS_AARCH64=0, as in ci/test-all.sh: the headers only)
	if [ "${DAEDALUS_AARCH64:-1}" = 1 ]; then
		beside arm64 sh -c 'ci/fetch-headers.sh arm64 arm64-16k && ci/guest-aarch64/kernel.sh &&
			ci/guest-aarch64/root.sh'
	else
		beside arm64 ci/fetch-headers.sh arm64 arm64-16k
	fi
	# the package build roots, the clean roots the .debs are installed into
	# and the arm64 cross roots (about 5 min each cold, 2 GB each)
	beside debroots sh -c 'for r in bookworm trixie; do for k in build clean cross-arm64; do
		packaging/debroot.sh "$r" "$k" || exit; done; done'
fi

for v in "${variants[@]}"; do
	step "guest kernel, $v (cached; ~13 min cold, longer for debug)" ci/guest-kernel/build.sh "$v"
done

failed=0
for name in "${!side[@]}"; do
	wait "${side[$name]}" || failed=1
done
[ "$failed" = 0 ] || { echo "prepare: a set-up step failed (see above)" >&2; exit 1; }
