#!/usr/bin/env python3
"""Starts daedalus-v4l2d in the guest the way systemd would (Type=notify):
hands it a NOTIFY_SOCKET, returns once it says READY=1 (exit 0) or dies /
times out (exit 1). A forked child keeps draining the socket (STATUS,
WATCHDOG) for as long as the daemon lives, so the daemon never sees a
vanished socket.

  start-daemon.py --log FILE --pidfile FILE [--timeout S] -- daemon args...
"""

import argparse
import os
import socket
import subprocess
import sys
import time


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", required=True)
    ap.add_argument("--pidfile", required=True)
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("cmd", nargs="+")
    args = ap.parse_args()

    sock_path = f"/run/daedalus-notify-{os.getpid()}.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    log = open(args.log, "ab")
    env = dict(os.environ, NOTIFY_SOCKET=sock_path)
    proc = subprocess.Popen(args.cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                            start_new_session=True)
    with open(args.pidfile, "w") as f:
        f.write(f"{proc.pid}\n")
    deadline = time.monotonic() + args.timeout
    ready = False
    while time.monotonic() < deadline and proc.poll() is None:
        sock.settimeout(0.2)
        try:
            msg = sock.recv(4096).decode(errors="replace")
        except socket.timeout:
            continue
        if "READY=1" in msg.split("\n"):
            ready = True
            break
    if not ready:
        state = f"exited with {proc.returncode}" if proc.poll() is not None else "not ready in time"
        print(f"start-daemon: {args.cmd[0]} {state}", file=sys.stderr)
        if proc.poll() is None:
            proc.kill()
        return 1
    if os.fork() == 0:
        # child: drain notifications until the daemon is gone (it is not our
        # child, so ask the kernel rather than Popen.poll)
        os.setsid()
        sock.settimeout(1)
        while _alive(proc.pid):
            try:
                sock.recv(4096)
            except socket.timeout:
                pass
        os.unlink(sock_path)
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
