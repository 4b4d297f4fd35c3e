#!/usr/bin/env bash
# The set-up both top-level commands share, each step cached: host packages,
# the guest kernel, the Debian 13 guest root, the test streams, the Rust
# crates fetched. Prints one line per step with its time.
#   usage: ci/prepare.sh [release|debug]...   (guest kernel variants; default release)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd -P)"
cd "$repo"
# rustup's cargo when the environment lacks it (CI runs without a login shell)
case ":$PATH:" in *":$HOME/.cargo/bin:"*) ;; *) export PATH="$HOME/.cargo/bin:$PATH" ;; esac
variants=("$@")
[ "${#variants[@]}" -gt 0 ] || variants=(release)

step() {
	local what=$1; shift
	local t0=$SECONDS
	echo "prepare: $what ..." >&2
	"$@" >/dev/null
	echo "prepare: $what done ($((SECONDS - t0)) s)" >&2
}
step "host packages (ci/setup-host.sh)" ci/setup-host.sh
for v in "${variants[@]}"; do
	step "guest kernel, $v (cached; ~10 min cold, longer for debug)" ci/guest-kernel/build.sh "$v"
done
step "Debian 13 guest root (cached; a few minutes cold)" ci/guest-root/build.sh
step "test streams (cached; ~1 min cold)" python3 -m ci.harness.streams
step "Rust crates (cargo fetch)" cargo fetch
