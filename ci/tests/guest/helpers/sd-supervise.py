#!/usr/bin/env python3
"""A stand-in for systemd's service manager, for a guest whose PID 1 is not
systemd: runs one Type=notify service the way daedalus-v4l2d.service asks
(NOTIFY_SOCKET, WATCHDOG_USEC/WATCHDOG_PID, Restart=on-failure) and writes
what happened as JSON lines, one event each, with a monotonic time:

  {"t": 12.3, "event": "start", "pid": 321}
  {"t": 12.9, "event": "notify", "pid": 321, "msg": "READY=1", "check": "..."}
  {"t": 13.4, "event": "notify", "pid": 321, "msg": "WATCHDOG=1"}
  {"t": 20.0, "event": "exit", "pid": 321, "status": -9}
  {"t": 20.0, "event": "watchdog-timeout", "pid": 321}

On READY=1 the service is SIGSTOPped while --on-ready runs (its output goes
into the event as "check"), then continued: whatever the check sees was in
place before the service said it was ready, not raced in after.

It speaks the real sd_notify protocol (an AF_UNIX datagram socket, newline
separated KEY=VALUE, the sender checked with SO_PASSCRED like NotifyAccess=main)
but is not systemd: no cgroups, no sandbox. The unit's own parsing and
sandbox are checked by ci/tests/host/test_system.py.

  sd-supervise.py --events FILE --pidfile FILE [--watchdog-sec S]
                  [--restart-sec S] [--on-ready CMD] -- service args...
SIGTERM stops the service (SIGTERM, then SIGKILL after 10 s) and exits.
"""

import argparse
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time

SO_PASSCRED = 16
SCM_CREDENTIALS = 2


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", required=True)
    ap.add_argument("--pidfile", required=True)
    ap.add_argument("--log", default="/dev/null")
    ap.add_argument("--watchdog-sec", type=float, default=20)
    ap.add_argument("--restart-sec", type=float, default=1)
    ap.add_argument("--on-ready", default="")
    ap.add_argument("cmd", nargs="+")
    args = ap.parse_args()

    events = open(args.events, "a", buffering=1)

    def emit(event: str, **kw) -> None:
        events.write(json.dumps({"t": round(time.monotonic(), 3), "event": event, **kw}) + "\n")

    sock_path = f"/run/sd-supervise-{os.getpid()}.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.setsockopt(socket.SOL_SOCKET, SO_PASSCRED, 1)
    sock.settimeout(0.1)
    log = open(args.log, "ab")
    stopping = False

    def on_term(_sig, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    watchdog_usec = int(args.watchdog_sec * 1_000_000)

    def start() -> subprocess.Popen:
        env = dict(os.environ, NOTIFY_SOCKET=sock_path, WATCHDOG_USEC=str(watchdog_usec))
        # WATCHDOG_PID must be the service's own pid: the shell's $$ becomes it at exec
        proc = subprocess.Popen(["/bin/sh", "-c", 'WATCHDOG_PID=$$ exec "$@"', "sh", *args.cmd],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                start_new_session=True)
        with open(args.pidfile, "w") as f:
            f.write(f"{proc.pid}\n")
        emit("start", pid=proc.pid)
        return proc

    proc = start()
    ready = False
    last_ping = time.monotonic()
    while True:
        if stopping:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            emit("exit", pid=proc.pid, status=proc.returncode)
            emit("stopped")
            break
        try:
            data, anc, _flags, _addr = sock.recvmsg(4096, socket.CMSG_SPACE(12))
        except socket.timeout:
            data, anc = None, []
        if data is not None:
            sender = None
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == SCM_CREDENTIALS:
                    sender = struct.unpack("iII", payload[:12])[0]
            for msg in data.decode(errors="replace").split("\n"):
                if not msg:
                    continue
                if sender != proc.pid:
                    # NotifyAccess=main: systemd ignores everyone else
                    emit("notify-ignored", pid=sender, msg=msg)
                    continue
                ev = {"pid": sender, "msg": msg}
                if msg == "READY=1" and not ready:
                    ready = True
                    last_ping = time.monotonic()
                    if args.on_ready:
                        os.kill(proc.pid, signal.SIGSTOP)
                        try:
                            res = subprocess.run(args.on_ready, shell=True, stdout=subprocess.PIPE,
                                                 stderr=subprocess.STDOUT, text=True, timeout=60)
                            ev["check"] = res.stdout
                            ev["check_rc"] = res.returncode
                        finally:
                            os.kill(proc.pid, signal.SIGCONT)
                if msg == "WATCHDOG=1":
                    last_ping = time.monotonic()
                emit("notify", **ev)
        rc = proc.poll()
        if rc is None and ready and time.monotonic() - last_ping > args.watchdog_sec:
            # systemd's WatchdogSignal= default
            emit("watchdog-timeout", pid=proc.pid)
            proc.send_signal(signal.SIGABRT)
            proc.wait()
            rc = proc.returncode
        if rc is not None:
            emit("exit", pid=proc.pid, status=rc)
            if rc == 0:  # Restart=on-failure: a clean exit stays down
                emit("stopped")
                break
            time.sleep(args.restart_sec)
            emit("restart")
            proc = start()
            ready = False
    os.unlink(sock_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
