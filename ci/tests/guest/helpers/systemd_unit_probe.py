#!/usr/bin/env python3
"""Drives daedalus-v4l2d.service under the guest's real systemd (PID 1) and
records what systemd, udev, the journal and the clients show; the asserts
are in ci/tests/guest/test_systemd_unit.py, which runs this as the command
of a `daedalus.init=systemd` boot.

Observes only; every phase is recorded even if an earlier one failed (its
exception is kept in the phase's "error"). The JSON is rewritten after each
phase, so a hang still leaves what came before it.

  systemd_unit_probe.py --bin DIR --streams STREAMS.json --out PROBE.json
"""

import argparse
import glob
import json
import os
import shutil
import subprocess
import threading
import time
import traceback

UNIT = "daedalus-v4l2d.service"
CHANNEL = "/dev/daedalus-v4l2"
DRIVER = "daedalus_v4l2"
USER = "viewer"  # the decoding client: an ordinary user in group video
STREAM_DIR = "/var/tmp/daedalus-streams"  # the 9p stream share is under /root (0700)
DECODE = ["daedalus-decode"]  # set from --bin
# a test-only runtime drop-in: the shipped WatchdogSec (20 s) would need
# minutes of decoding to show a missed ping
WATCHDOG_DROPIN = "/run/systemd/system/daedalus-v4l2d.service.d/60-ci-watchdog.conf"
WATCHDOG_TEST_SEC = 4
SHOW = ["ActiveState", "SubState", "Result", "MainPID", "NRestarts", "StatusText", "WatchdogUSec",
        "WatchdogTimestampMonotonic", "ExecMainStartTimestampMonotonic",
        "ActiveEnterTimestampMonotonic", "InactiveExitTimestampMonotonic", "ExecMainCode",
        "ExecMainStatus", "User", "Type", "NotifyAccess", "FragmentPath", "DropInPaths", "ExecStart",
        "Restart"]


def sh(cmd: str, timeout: float = 120) -> dict:
    start = time.monotonic()
    try:
        p = subprocess.run(cmd, shell=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, errors="replace", timeout=timeout)
        rc, out = p.returncode, p.stdout
    except subprocess.TimeoutExpired as e:
        rc, out = -1, (e.stdout or b"").decode("utf-8", "replace") + f"\n(timed out after {timeout} s)"
    return {"cmd": cmd, "rc": rc, "out": out, "seconds": round(time.monotonic() - start, 3)}


def show(unit: str = UNIT, props: list[str] = SHOW) -> dict:
    out = sh(f"systemctl show {unit} " + " ".join(f"-p {p}" for p in props))["out"]
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def now_us() -> int:
    """CLOCK_MONOTONIC in µs: the clock of systemd's *TimestampMonotonic."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def journal(unit: str = UNIT, since_us: int = 0) -> list[dict]:
    """The unit's journal entries this boot (the daemon's and systemd's about it)."""
    out = sh(f"journalctl -b -u {unit} -o json --no-pager", timeout=60)["out"]
    keep = ("MESSAGE", "SYSLOG_IDENTIFIER", "_TRANSPORT", "PRIORITY", "_PID", "__MONOTONIC_TIMESTAMP")
    entries = []
    for line in out.splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if int(e.get("__MONOTONIC_TIMESTAMP", 0)) >= since_us:
            entries.append({k: e.get(k) for k in keep})
    return entries


def wait_for(pred, timeout: float, step: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(step)


def decoder_nodes() -> dict:
    """The decoder's video and media nodes, found by driver name."""
    nodes = {"video": [], "media": []}
    for v in sorted(glob.glob("/dev/video*")):
        if f"Driver name      : {DRIVER}" in sh(f"v4l2-ctl -d {v} -D")["out"]:
            nodes["video"].append(v)
    for m in sorted(glob.glob("/dev/media*")):
        out = sh(f"media-ctl -d {m} -p")["out"]
        if any(line.split()[:2] == ["driver", DRIVER] for line in out.splitlines()):
            nodes["media"].append(m)
    return nodes


def stat_node(path: str) -> dict:
    out = sh(f"stat -c '%U %G %a' {path}")["out"].split()
    return {"path": path, "owner": out[0], "group": out[1], "mode": out[2]} if len(out) == 3 else {"path": path}


def proc_status(pid: str) -> dict:
    keep = ("Uid", "Gid", "Groups", "NoNewPrivs", "Seccomp", "CapEff", "CapBnd", "CapPrm")
    try:
        with open(f"/proc/{pid}/status") as f:
            return {k: v.strip() for k, v in (l.split(":", 1) for l in f if ":" in l) if k in keep}
    except OSError as e:
        return {"error": str(e)}


def formats(video: str) -> str:
    return sh(f"v4l2-ctl -d {video} --list-formats-out")["out"]


# how long the STATUS= sample decode runs: a few daemon STATUS periods
STATUS_DECODE_SEC = 7


def decode(video: str, stream: dict) -> dict:
    """Decodes one stream as the unprivileged user, verified against its reference."""
    res = sh(f"runuser -u {USER} -- {DECODE[0]} --device {video} --verify {stream['ref']} {stream['path']}",
             timeout=600)
    res["out"] = res["out"][-3000:]
    return res


class UnitBus:
    """The unit's properties read over D-Bus in this process (Gio): a
    systemctl process per sample takes up to a second on a loaded TCG guest,
    too coarse to see every watchdog ping."""

    UNIT_PROPS = {"ActiveState", "SubState"}

    def __init__(self, unit: str):
        from gi.repository import Gio, GLib

        self.Gio, self.GLib = Gio, GLib
        self.bus = Gio.bus_get_sync(Gio.BusType.SYSTEM, None)
        self.path = self._call("/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager", "LoadUnit",
                               GLib.Variant("(s)", (unit,)), "(o)")[0]

    def _call(self, path, iface, method, args, reply):
        return self.bus.call_sync("org.freedesktop.systemd1", path, iface, method, args,
                                  self.GLib.VariantType(reply), self.Gio.DBusCallFlags.NONE, -1, None).unpack()

    def get(self, props: list[str]) -> dict:
        # one Get per property: GetAll of a service is a few hundred of them
        out = {}
        for name in props:
            iface = "org.freedesktop.systemd1." + ("Unit" if name in self.UNIT_PROPS else "Service")
            out[name] = str(self._call(self.path, "org.freedesktop.DBus.Properties", "Get",
                                       self.GLib.Variant("(ss)", (iface, name)), "(v)")[0])
        return out


class Sampler(threading.Thread):
    """Polls the unit's properties until stopped: what systemd saw, when
    (CLOCK_MONOTONIC µs). Over D-Bus if python3-gi is there, else systemctl."""

    def __init__(self, props: list[str], period: float):
        super().__init__(daemon=True)
        self.props, self.period, self.samples = props, period, []
        self.done = threading.Event()
        try:
            bus = UnitBus(UNIT)
            self.read = lambda: bus.get(self.props)
            self.via = "dbus"
        except Exception:  # no gi: the slow way
            self.read = lambda: show(UNIT, self.props)
            self.via = "systemctl"

    def run(self):
        while not self.done.is_set():
            t = now_us()
            self.samples.append({"t": t, **self.read()})
            self.done.wait(self.period)

    def stop(self) -> list[dict]:
        self.done.set()
        self.join()
        return self.samples


# --- phases ------------------------------------------------------------------------

def phase_boot(ctx: dict) -> dict:
    r: dict = {}
    r["systemd_version"] = sh("systemctl --version")["out"].splitlines()[0]
    r["system_state"] = sh("systemctl is-system-running")["out"].strip()
    r["failed_units"] = sh("systemctl --failed --plain --no-legend --no-pager")["out"]
    r["analyze_time"] = sh("systemd-analyze time")["out"]
    r["passwd"] = sh("getent passwd daedalus")["out"].strip()
    r["group"] = sh("getent group daedalus")["out"].strip()
    r["sysusers"] = show("systemd-sysusers.service", ["ActiveState", "Result"])
    r["channel"] = stat_node(CHANNEL)
    nodes = decoder_nodes()
    r["nodes"] = {kind: [stat_node(p) for p in paths] for kind, paths in nodes.items()}
    ctx["video"] = nodes["video"][0] if nodes["video"] else None
    r["module_path"] = sh(f"modinfo -n {DRIVER}")["out"].strip()
    r["module_loaded"] = os.path.isdir(f"/sys/module/{DRIVER}")
    r["modules_load"] = show("systemd-modules-load.service",
                             ["ActiveState", "Result", "ActiveEnterTimestampMonotonic"])
    # by identifier: it runs before journald, its lines come in through kmsg
    r["modules_load_journal"] = sh("journalctl -b -t systemd-modules-load --no-pager -o cat")["out"]
    r["unit"] = show()
    r["main_status"] = proc_status(r["unit"].get("MainPID", "0"))
    r["formats"] = formats(ctx["video"]) if ctx["video"] else ""
    r["journal"] = journal()
    return r


def phase_ready_gate(ctx: dict) -> dict:
    """READY=1 must wait for the channel handshake: while a stand-in holds the
    (exclusive) channel, the daemon retries the open and the unit must stay
    'activating'; released, the daemon says HELLO, then READY=1."""
    r: dict = {"stop": sh(f"systemctl stop {UNIT}")}
    r["stopped"] = show(UNIT, ["ActiveState", "Result"])
    holder = os.open(CHANNEL, os.O_RDWR)
    since = now_us()
    try:
        r["start_no_block"] = sh(f"systemctl start --no-block {UNIT}")
        # until the daemon reports it waits for the busy channel (slow under TCG)
        r["saw_waiting"] = bool(wait_for(
            lambda: any("waiting" in (e["MESSAGE"] or "") for e in journal(since_us=since)), 60))
        sampler = Sampler(["ActiveState", "SubState", "StatusText", "MainPID"], 0.1)
        sampler.start()
        time.sleep(1.5)
        r["formats_while_held"] = formats(ctx["video"]) if ctx["video"] else ""
        r["held_samples"] = sampler.stop()
    finally:
        r["released_us"] = now_us()
        os.close(holder)
    r["active"] = bool(wait_for(lambda: show(UNIT, ["ActiveState"]).get("ActiveState") == "active", 30, 0.05))
    r["after"] = show()
    r["formats_after"] = formats(ctx["video"]) if ctx["video"] else ""
    r["journal"] = journal(since_us=since)
    return r


def phase_decode(ctx: dict) -> dict:
    r: dict = {}
    r["useradd"] = sh(f"id {USER} || useradd --no-create-home --no-user-group --groups video "
                      f"--shell /bin/sh {USER}; id {USER}")
    r["user_opens_channel"] = sh(f"runuser -u {USER} -- sh -c 'exec 3<>{CHANNEL}'")
    os.makedirs(STREAM_DIR, exist_ok=True)
    os.chmod(STREAM_DIR, 0o755)
    local = {}
    for name, s in ctx["streams"].items():
        copy = dict(s)
        for key in ("path", "ref"):
            # the file name keeps its extension: daedalus-decode tells the codec by it
            dst = os.path.join(STREAM_DIR, f"{key}-{os.path.basename(s[key])}")
            shutil.copyfile(s[key], dst)
            os.chmod(dst, 0o644)
            copy[key] = dst
        local[name] = copy
    ctx["local_streams"] = local
    before = show()
    sampler = Sampler(["StatusText", "MainPID"], 0.5)
    sampler.start()
    r["decodes"] = {name: decode(ctx["video"], s) for name, s in local.items()}
    # STATUS= is sent every 2 s (STATUS_PERIOD in daemon/src/service.rs): one
    # session that surely outlives a few periods, however fast the machine
    # decodes (the stream loops until `timeout` ends the client)
    first = next(iter(local.values()))
    r["status_decode"] = sh(f"runuser -u {USER} -- timeout -s INT {STATUS_DECODE_SEC} {DECODE[0]} "
                            f"--device {ctx['video']} --loop 1000000 --quiet {first['path']}",
                            timeout=STATUS_DECODE_SEC + 60)
    r["status_samples"] = sampler.stop()
    r["before"], r["after"] = before, show()
    return r


def phase_watchdog(ctx: dict) -> dict:
    """Decoding two 1080p streams at once, over and over, with WatchdogSec=4s:
    systemd's last-ping timestamp must keep moving, the daemon must survive."""
    r: dict = {}
    os.makedirs(os.path.dirname(WATCHDOG_DROPIN), exist_ok=True)
    with open(WATCHDOG_DROPIN, "w") as f:
        f.write(f"[Service]\nWatchdogSec={WATCHDOG_TEST_SEC}s\n")
    r["reload"] = sh(f"systemctl daemon-reload && systemctl restart {UNIT}")
    r["before"] = show()
    names = list(ctx["local_streams"])
    sampler = Sampler(["WatchdogTimestampMonotonic", "MainPID", "NRestarts", "ActiveState"], 0.1)
    sampler.start()
    runs = []
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < 20:
        pair = [ctx["local_streams"][names[(i + k) % len(names)]] for k in (0, 1)]
        threads, results = [], [None, None]
        for k, s in enumerate(pair):
            def work(k=k, s=s):
                results[k] = decode(ctx["video"], s)
            threads.append(threading.Thread(target=work))
            threads[-1].start()
        for t in threads:
            t.join()
        runs += [{"rc": res["rc"], "out": res["out"][-400:]} for res in results]
        i += 1
    r["decode_seconds"] = round(time.monotonic() - start, 2)
    r["samples"] = sampler.stop()
    r["sampled_via"] = sampler.via
    r["runs"] = runs
    r["after"] = show()
    r["journal"] = journal(since_us=r["samples"][0]["t"] if r["samples"] else 0)
    os.unlink(WATCHDOG_DROPIN)
    r["restore"] = sh(f"systemctl daemon-reload && systemctl restart {UNIT}")
    r["restored"] = show()
    return r


def phase_kill(ctx: dict) -> dict:
    r: dict = {"before": show()}
    pid = r["before"]["MainPID"]
    if not pid.isdigit() or int(pid) <= 1:  # "kill -KILL 0" would end this probe
        raise RuntimeError(f"no main process to kill: MainPID={pid}")
    since = now_us()
    r["kill"] = sh(f"kill -KILL {pid}")
    r["killed_us"] = since

    def restarted():
        s = show()
        return s if s["MainPID"] not in ("0", pid) and s["ActiveState"] == "active" else None

    r["after"] = wait_for(restarted, 60, 0.1) or show()
    r["active_us"] = now_us()
    r["journal"] = journal(since_us=since)
    stream = ctx["local_streams"].get("h264-1920x1080") or next(iter(ctx["local_streams"].values()))
    r["decode_after"] = decode(ctx["video"], stream)
    return r


def phase_stop(ctx: dict) -> dict:
    r: dict = {"before": show()}
    since = now_us()
    r["stop"] = sh(f"systemctl stop {UNIT}", timeout=60)
    r["after"] = show()
    r["is_failed"] = sh(f"systemctl is-failed {UNIT}")["out"].strip()
    r["journal"] = journal(since_us=since)
    r["journal_all"] = journal()
    r["journalctl_u"] = sh(f"journalctl -b -u {UNIT} --no-pager")["out"][-6000:]
    return r


def phase_security(ctx: dict) -> dict:
    return {"analyze": sh(f"systemd-analyze security --no-pager {UNIT}")}


PHASES = [("boot", phase_boot), ("ready_gate", phase_ready_gate), ("decode", phase_decode),
          ("watchdog", phase_watchdog), ("kill", phase_kill), ("stop", phase_stop),
          ("security", phase_security)]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True, help="where daedalus-decode is")
    ap.add_argument("--streams", required=True, help="JSON: name -> {path, ref}")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    DECODE[0] = os.path.join(args.bin, "daedalus-decode")
    with open(args.streams) as f:
        ctx = {"streams": json.load(f), "video": None, "local_streams": {}}
    results: dict = {}
    for name, fn in PHASES:
        t0 = time.monotonic()
        print(f"systemd-unit-probe: {name}", flush=True)
        try:
            results[name] = fn(ctx)
        except Exception:
            results[name] = {"error": traceback.format_exc()}
            print(results[name]["error"], flush=True)
        results[name]["phase_seconds"] = round(time.monotonic() - t0, 2)
        tmp = args.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(results, f, indent=1)
        os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
