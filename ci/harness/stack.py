"""Our stack on a target: the kernel module, the daemon, device discovery.

Written against the agreed names (DESIGN.md and the team brief): module
daedalus_v4l2.ko, driver "daedalus_v4l2", channel /dev/daedalus-v4l2, daemon
daedalus-v4l2d with --config.
"""

import re
import time
from dataclasses import dataclass

from .target import CommandFailed, Target

DRIVER = "daedalus_v4l2"
CHANNEL = "/dev/daedalus-v4l2"
# the core modules the driver needs (as modules in the guest kernel)
DEPENDENCIES = ["v4l2-mem2mem", "videobuf2-dma-contig", "videobuf2-vmalloc"]

FIND_VIDEO = (
    "for v in /dev/video*; do v4l2-ctl -d $v -D 2>/dev/null | grep -Eq 'Driver name *: {drv}$' && echo $v; done"
)
FIND_MEDIA = (
    "for m in /dev/media*; do media-ctl -d $m -p 2>/dev/null | grep -Eq '^driver +{drv}$' && echo $m; done"
)


@dataclass
class Devices:
    video: str
    media: str


class Stack:
    def __init__(self, t: Target):
        self.t = t
        self.daemon_log = "/tmp/daedalus-v4l2d.log"
        self.pidfile = "/run/daedalus-v4l2d.pid"
        self.config = f"{t.repo}/ci/tests/guest/daedalus-v4l2d.test.toml"

    def bin(self, name: str) -> str:
        return f"{self.t.bin}/{name}"

    # -- module -------------------------------------------------------------
    def module_loaded(self) -> bool:
        return self.t.run(f"test -d /sys/module/{DRIVER}").ok

    def load_module(self, params: str = "") -> None:
        """Loads the module (with `params`, e.g. "max_sessions=4") unless it is loaded."""
        if self.module_loaded():
            return
        self.t.run("modprobe -a " + " ".join(DEPENDENCIES), check=True)
        if self.t.module.endswith(".ko"):
            self.t.run(f"insmod {self.t.module} {params}", check=True)
        else:
            self.t.run(f"modprobe {self.t.module} {params}", check=True)

    def unload_module(self) -> None:
        if self.module_loaded():
            self.t.run(f"rmmod {DRIVER}", check=True, timeout=60)

    def devices(self, timeout: float = 10) -> Devices:
        """The decoder's /dev/videoN and /dev/mediaN (waits for them to appear)."""
        deadline = time.monotonic() + timeout
        while True:
            video = self.t.run(FIND_VIDEO.format(drv=DRIVER)).stdout.split()
            media = self.t.run(FIND_MEDIA.format(drv=DRIVER)).stdout.split()
            if len(video) == 1 and len(media) == 1:
                return Devices(video[0], media[0])
            if time.monotonic() > deadline:
                raise CommandFailed(f"expected one {DRIVER} video and media node, got {video} {media}")
            time.sleep(0.5)

    # -- daemon -------------------------------------------------------------
    def daemon_pid(self) -> int | None:
        res = self.t.run(f"cat {self.pidfile} 2>/dev/null")
        pid = res.stdout.strip()
        if not pid.isdigit():
            return None
        return int(pid) if self.t.run(f"kill -0 {pid}").ok else None

    def start_daemon(self, extra: str = "") -> None:
        if self.daemon_pid():
            return
        helper = f"{self.t.repo}/ci/tests/guest/helpers/start-daemon.py"
        self.t.run(
            f"python3 {helper} --log {self.daemon_log} --pidfile {self.pidfile} --timeout 60 -- "
            f"{self.bin('daedalus-v4l2d')} --config {self.config} {extra}",
            check=True, timeout=90)

    def stop_daemon(self, signal: str = "TERM", timeout: float = 20) -> int | None:
        """Signals the daemon and waits for it to go; its exit is not observable
        from here (not our child), so returns the pid it had."""
        pid = self.daemon_pid()
        if not pid:
            return None
        self.t.run(f"kill -{signal} {pid}")
        deadline = time.monotonic() + timeout
        while self.t.run(f"kill -0 {pid} 2>/dev/null").ok:
            if time.monotonic() > deadline:
                raise CommandFailed(f"daedalus-v4l2d (pid {pid}) still alive {timeout} s after SIG{signal}")
            time.sleep(0.3)
        return pid

    def log_tail(self, lines: int = 40) -> str:
        return self.t.run(f"tail -n {lines} {self.daemon_log} 2>/dev/null").stdout

    # -- all of it ----------------------------------------------------------
    def up(self) -> Devices:
        self.load_module()
        self.start_daemon()
        return self.devices()

    def down(self) -> None:
        self.stop_daemon()
        self.unload_module()


FPS = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*fps", re.I)


def parse_fps(text: str) -> float | None:
    m = FPS.findall(text)
    return float(m[-1]) if m else None
