"""The "target" the guest tests talk to: a labgrid environment (QEMU guest
now, a Pi 5 later) behind one small interface, `run(cmd) -> Result`.

The environment file is chosen by DAEDALUS_TARGET (a path or a name in
ci/targets/, default qemu-x86_64). For QEMU the dynamic pieces (kernel path,
9p shares, KVM or TCG) come from ci/harness/qemu.py through LG_* variables,
so the QEMU command line has one source of truth; the guest architecture is
the file's `daedalus_arch` option (default x86_64).
"""

import os
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from . import paths, qemu
from .splat import find_splats


@dataclass
class Result:
    rc: int
    stdout: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.rc == 0


class CommandFailed(AssertionError):
    pass


def target_option(env_path: Path, name: str) -> str | None:
    """One option of an environment file, read before labgrid loads it (its
    !template values need the LG_* variables this option decides)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda _loader, _suffix, _node: None)
    doc = yaml.load(env_path.read_text(), Loader=Loader) or {}
    return (doc.get("options") or {}).get(name)


def env_file() -> Path:
    name = os.environ.get("DAEDALUS_TARGET", "qemu-x86_64")
    p = Path(name)
    return p if p.suffix == ".yaml" else paths.REPO / "ci" / "targets" / f"{name}.yaml"


class Target:
    def __init__(self, variant: str = "release"):
        from labgrid import Environment  # the venv's labgrid; host tests never need it

        self.env_path = env_file()
        self.arch = target_option(self.env_path, "daedalus_arch") or "x86_64"
        self.variant = variant
        self.is_qemu = "qemu" in self.env_path.name
        if self.is_qemu:
            self._export_qemu_vars()
        # the whole serial console, kept whatever happens (a panic ends the
        # shell, not the log): out/labgrid/<variant>[-<arch>]/console_main
        from labgrid.consoleloggingreporter import ConsoleLoggingReporter

        if ConsoleLoggingReporter.instance is None:
            log_name = variant if self.arch == "x86_64" else f"{variant}-{self.arch}"
            self.console_log_dir = paths.OUT / "labgrid" / log_name
            ConsoleLoggingReporter.start(str(self.console_log_dir))
        self.env = Environment(config_file=str(self.env_path))
        self.lg = self.env.get_target("main")
        opt = self.env.config.get_option
        self.kind = opt("daedalus_kind")
        self.repo = opt("daedalus_repo")
        self.bin = opt("daedalus_bin")
        self.module = opt("daedalus_module")
        self.page_size = opt("daedalus_page_size")
        self.streams = opt("daedalus_streams")
        self.out = opt("daedalus_out")
        self.shell = None
        self._dmesg_mark = 0

    def _export_qemu_vars(self) -> None:
        mem = 3072 if self.variant == "debug" else 2048
        # the streams; the Debian 12 side root for GStreamer 1.22 and FFmpeg
        # 5.1 (ci/tests/guest/userlands.py)
        shares = [(paths.STREAMS, True), (paths.bookworm_root(), True)]
        cfg = qemu.GuestConfig(variant=self.variant, memory_mb=mem, shares=shares, arch=self.arch)
        parts = qemu.qemu_parts(cfg, "shell", None, qemu.probe_accel())
        os.environ.update({
            "LG_QEMU_CPU": parts["cpu"],
            "LG_QEMU_MEMORY": parts["memory"],
            "LG_QEMU_KERNEL": parts["kernel"],
            "LG_QEMU_EXTRA_ARGS": shlex.join(parts["extra_args"]),
            "LG_QEMU_BOOT_ARGS": parts["append"],
            "LG_DAEDALUS_REPO": str(paths.REPO),
            "LG_DAEDALUS_STREAMS": str(paths.STREAMS),
            "LG_DAEDALUS_OUT": str(paths.OUT),
            # where the module for this kernel was built: in place for the
            # release kernel (ci/tests/host/test_kernel.py), a copy of kernel/
            # for the debug one (ci/test-all.sh), so neither build replaces
            # the module the other guest loads
            "LG_DAEDALUS_KBUILD": str(paths.REPO / "kernel" if self.variant == "release"
                                      else paths.OUT / "kbuild" / self.variant),
        })

    def start(self) -> float:
        """Powers the target on (QEMU) and waits for its shell; returns seconds taken."""
        start = time.monotonic()
        if self.is_qemu:
            power = self.lg.get_driver("QEMUDriver")
            self.lg.activate(power)
            power.on()
        self.shell = self.lg.get_driver("CommandProtocol")
        self.lg.activate(self.shell)
        self.mark_dmesg()
        return time.monotonic() - start

    def stop(self) -> None:
        if self.is_qemu:
            power = self.lg.get_driver("QEMUDriver")
            power.off()
        self.lg.deactivate_all_drivers()

    def run(self, cmd: str, timeout: float = 120, check: bool = False) -> Result:
        start = time.monotonic()
        out, err, rc = self.shell.run(cmd, timeout=timeout)
        res = Result(rc, "\n".join(out + err), time.monotonic() - start)
        if check and rc != 0:
            raise CommandFailed(f"`{cmd}` exited {rc}:\n{res.stdout[-4000:]}")
        return res

    def mark_dmesg(self) -> None:
        """Remembers where dmesg ends, so new_splats() looks only at what follows."""
        res = self.run("dmesg | wc -l")
        self._dmesg_mark = int(res.stdout.strip() or 0) if res.ok else 0

    def new_dmesg(self) -> str:
        return self.run(f"dmesg | tail -n +{self._dmesg_mark + 1}", timeout=60).stdout

    def new_splats(self) -> list[str]:
        return find_splats(self.new_dmesg())

    def kmemleak_report(self) -> str:
        """Forces two kmemleak scans (debug kernel) and returns the report, '' if none."""
        if not self.run("test -w /sys/kernel/debug/kmemleak").ok:
            return ""
        self.run("echo scan > /sys/kernel/debug/kmemleak; sleep 6; echo scan > /sys/kernel/debug/kmemleak",
                 timeout=300)
        return self.run("cat /sys/kernel/debug/kmemleak", timeout=60).stdout
