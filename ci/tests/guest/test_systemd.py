"""daedalus-v4l2d as daedalus-v4l2d.service runs it: Type=notify with a
watchdog and Restart=on-failure.

The QEMU guest's PID 1 is the harness's init, not systemd, so the service
manager here is helpers/sd-supervise.py: the real sd_notify protocol
(NOTIFY_SOCKET datagrams, WATCHDOG_USEC/WATCHDOG_PID, sender checked like
NotifyAccess=main) and systemd's restart and watchdog rules, not systemd
itself. The unit file's parsing and sandbox are checked on the host
(ci/tests/host/test_system.py); under real systemd it runs on the board.
"""

import json
import re
import time

import pytest

from ci.harness import report
from ci.harness.stack import CHANNEL

from .decode import daedalus_decode

WATCHDOG_SEC = 2.0  # short, so a missed ping shows within the test
EVENTS = "/tmp/sd-supervise.events"
PIDFILE = "/run/sd-supervise.daemon.pid"
SUPERVISOR_PID = "/run/sd-supervise.pid"
LOG = "/tmp/sd-supervise.daemon.log"
# helpers/sd-supervise.toml announces these two coded formats only
CODECS = {"h264": "H264", "vp9": "VP90"}


class Supervised:
    def __init__(self, target, stack):
        self.t, self.stack = target, stack
        helper = f"{target.repo}/ci/tests/guest/helpers/sd-supervise.py"
        # the check run while the daemon is stopped right after READY=1: the
        # coded formats it announced in the HELLO handshake must be visible
        video = stack.devices().video
        on_ready = f"v4l2-ctl -d {video} --list-formats-out"
        config = f"{target.repo}/ci/tests/guest/helpers/sd-supervise.toml"
        target.run(f"rm -f {EVENTS} {PIDFILE}")
        target.run(
            f"setsid python3 {helper} --events {EVENTS} --pidfile {PIDFILE} --log {LOG} "
            f"--watchdog-sec {WATCHDOG_SEC} --restart-sec 1 --on-ready '{on_ready}' -- "
            f"{stack.bin('daedalus-v4l2d')} --config {config} "
            f"</dev/null >/dev/null 2>&1 & echo $! >{SUPERVISOR_PID}", check=True)

    def events(self) -> list[dict]:
        out = self.t.run(f"cat {EVENTS} 2>/dev/null").stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def wait_for(self, pred, timeout: float, what: str) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for ev in self.events():
                if pred(ev):
                    return ev
            time.sleep(0.5)
        pytest.fail(f"no {what} within {timeout} s; events:\n" + "\n".join(map(str, self.events()[-30:]))
                    + "\ndaemon log:\n" + self.t.run(f"tail -n 40 {LOG}").stdout)

    def daemon_pid(self) -> int:
        return int(self.t.run(f"cat {PIDFILE}", check=True).stdout.strip())

    def stop(self) -> None:
        self.t.run(f"kill -TERM $(cat {SUPERVISOR_PID}) 2>/dev/null; "
                   f"for i in $(seq 40); do grep -q '\"stopped\"' {EVENTS} && break; sleep 0.5; done")


@pytest.fixture
def supervised(target, stack):
    stack.stop_daemon()  # the harness's own daemon, if one runs
    stack.load_module()
    sup = Supervised(target, stack)
    yield sup
    sup.stop()


def ready_of(pid: int):
    return lambda ev: ev["event"] == "notify" and ev["msg"] == "READY=1" and ev["pid"] == pid


def test_ready_only_after_handshake(target, supervised):
    start = supervised.wait_for(lambda ev: ev["event"] == "start", 10, "start")
    ready = supervised.wait_for(ready_of(start["pid"]), 60, "READY=1")
    # taken while the daemon was stopped right after READY=1
    formats = ready.get("check", "")
    assert ready.get("check_rc") == 0, formats
    listed = set(re.findall(r"\[\d+\]: '(\w+)'", formats))
    assert listed == set(CODECS.values()), f"formats at READY=1 are not the daemon's:\n{formats}"
    # the channel is held: one holder at a time
    second = target.run(f"python3 -c \"open('{CHANNEL}', 'rb')\" 2>&1")
    assert not second.ok and "Device or resource busy" in second.stdout, second.stdout
    report.figure("daemon start to READY=1 (sd-supervise)", f"{ready['t'] - start['t']:.2f} s")


def test_watchdog_pings_under_load(target, stack, supervised, manifest):
    start = supervised.wait_for(lambda ev: ev["event"] == "start", 10, "start")
    supervised.wait_for(ready_of(start["pid"]), 60, "READY=1")
    video = stack.devices().video
    stream = manifest["h264-1920x1080"]
    # two decodes at once keep every CPU busy for the whole measurement
    cmd = daedalus_decode(stack, video, stream)
    res = target.run(f"({cmd} >/tmp/wd-a.log 2>&1 & {cmd} >/tmp/wd-b.log 2>&1 & wait) ; "
                     "tail -n 5 /tmp/wd-a.log /tmp/wd-b.log", timeout=900)
    events = supervised.events()
    assert not [e for e in events if e["event"] == "watchdog-timeout"], events[-20:]
    pings = [e["t"] for e in events if e["event"] == "notify" and e["msg"] == "WATCHDOG=1"
             and e["pid"] == start["pid"]]
    assert len(pings) >= 3, f"{len(pings)} watchdog pings during {res.seconds:.1f} s of decoding"
    gaps = [b - a for a, b in zip(pings, pings[1:])]
    worst = max(gaps)
    report.figure(f"watchdog ping gap under load (max of {len(gaps)}, WatchdogSec={WATCHDOG_SEC:g})",
                  f"{worst:.2f} s")
    assert worst < WATCHDOG_SEC, f"watchdog gap {worst:.2f} s >= {WATCHDOG_SEC} s"
    assert not [e for e in events if e["event"] == "exit"], events[-20:]


def test_killed_daemon_is_restarted(target, stack, supervised, manifest):
    start = supervised.wait_for(lambda ev: ev["event"] == "start", 10, "start")
    supervised.wait_for(ready_of(start["pid"]), 60, "READY=1")
    target.run(f"kill -KILL {start['pid']}", check=True)
    supervised.wait_for(lambda ev: ev["event"] == "exit" and ev["pid"] == start["pid"], 10, "exit")
    again = supervised.wait_for(lambda ev: ev["event"] == "start" and ev["pid"] != start["pid"], 10, "restart")
    ready = supervised.wait_for(ready_of(again["pid"]), 60, "READY=1 after restart")
    report.figure("SIGKILL to READY=1 of the restarted daemon (RestartSec=1)",
                  f"{ready['t'] - again['t'] + 1:.2f} s")
    video = stack.devices().video
    res = target.run(daedalus_decode(stack, video, manifest["h264-320x240"]) + " 2>&1", timeout=600)
    assert res.rc == 0, f"decode after restart failed:\n{res.stdout[-3000:]}"
