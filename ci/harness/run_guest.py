"""Command-line entry: boot the guest, run a command in it, return its status.

  ci/qemu/run-guest.sh [--arch x86_64|aarch64] [--debug] [--timeout S] [--modules a,b] [--udev] [--systemd]
                       [--share PATH[:ro]] [--memory MB] [--shell] -- <command...>

The command runs under bash in the repository (same path as on the host). Exit
status: the command's, or 97 kernel splat, 98 hang/timeout, 99 panic/boot failure.
"""

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ci.harness import paths, qemu  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(prog="run-guest.sh", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", choices=qemu.guest_arch.ARCHES, default="x86_64",
                    help="guest architecture (aarch64: Debian's 16K-page kernel under TCG)")
    ap.add_argument("--debug", action="store_true", help="debug kernel (KASAN, lockdep, kmemleak)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds before the run counts as hung")
    ap.add_argument("--modules", default="", help="comma-separated modules to modprobe at boot")
    ap.add_argument("--udev", action="store_true", help="run systemd-udevd in the guest")
    ap.add_argument("--systemd", action="store_true",
                    help="boot the root's systemd as PID 1 with the shipped unit, rules and users "
                         "(--modules/--udev do not apply: modules-load.d and udev do that)")
    ap.add_argument("--share", action="append", default=[], help="host dir at the same guest path (PATH or PATH:ro)")
    ap.add_argument("--memory", type=int, default=0, help="guest memory in MiB (default 2048, 3072 for debug)")
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--accel", choices=["kvm", "tcg"], help="skip the KVM probe")
    ap.add_argument("--shell", action="store_true", help="interactive root shell on the console")
    ap.add_argument("command", nargs="*")
    args = ap.parse_args()

    variant = "debug" if args.debug else "release"
    shares = []
    for s in args.share:
        ro = s.endswith(":ro")
        shares.append((Path(s[:-3] if ro else s).resolve(), ro))
    if paths.STREAMS.is_dir() and not any(p == paths.STREAMS for p, _ in shares):
        shares.append((paths.STREAMS, True))
    cfg = qemu.GuestConfig(variant=variant, memory_mb=args.memory or (3072 if args.debug else 2048),
                           cpus=args.cpus, modules=[m for m in args.modules.split(",") if m],
                           udev=args.udev, shares=shares, accel=args.accel or "", arch=args.arch,
                           init="systemd" if args.systemd else "harness")
    if args.shell:
        argv = qemu.qemu_argv(cfg, "shell", None, cfg.accel or qemu.probe_accel())
        argv[argv.index("stdio")] = "mon:stdio"
        print("run-guest: interactive shell; Ctrl-A X quits QEMU", file=sys.stderr)
        return subprocess.call(argv)
    if not args.command:
        ap.error("no command (give it after --, or use --shell)")
    command = args.command[0] if len(args.command) == 1 else shlex.join(args.command)
    res = qemu.run_command(cfg, command, timeout=args.timeout)
    return res.rc


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
