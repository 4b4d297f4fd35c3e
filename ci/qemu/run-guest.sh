#!/usr/bin/env bash
# Boots the QEMU guest, runs a command in it, prints its output, returns its
# exit status (97 kernel splat, 98 hang, 99 panic/boot failure). See
# ci/harness/run_guest.py for the options.
#   ci/qemu/run-guest.sh [--debug] [--modules vicodec] -- <command>
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd -P)"
exec python3 "$repo/ci/harness/run_guest.py" "$@"
