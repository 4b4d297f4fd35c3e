"""Boots a QEMU guest (x86_64, or aarch64 with Debian's 16K-page kernel; see
guest_arch.py): 9p-shared Debian 13 root, the guest kernel, the repository at
its host path. Used by ci/qemu/run-guest.sh and by
the test suite's QEMU target.
"""

import ctypes
import os
import signal
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import guest_arch, paths
from .splat import find_splats

# Exit statuses of a run that did not get as far as the command's own status.
RC_SPLAT = 97
RC_TIMEOUT = 98
RC_BOOT = 99

MARK_UP = re.compile(r"@@DAEDALUS-GUEST-UP (\S+)@@")
MARK_END = re.compile(r"@@DAEDALUS-CMD-END rc=(\d+)@@")


@dataclass
class GuestConfig:
    variant: str = "release"  # guest kernel: release or debug (KASAN, lockdep, kmemleak)
    memory_mb: int = 2048
    cpus: int = 2
    modules: list[str] = field(default_factory=list)  # modprobe'd by the guest init
    udev: bool = False
    shares: list[tuple[Path, bool]] = field(default_factory=list)  # (path, read_only)
    accel: str = ""  # "" = probe (cached), or kvm / tcg
    arch: str = "x86_64"  # one of guest_arch.ARCHES; a foreign one always runs under TCG
    # PID 1: "harness" (ci/qemu/guest-init.sh) or "systemd" (the root's own,
    # with the shipped unit, rules and users installed by ci/qemu/systemd-root.sh)
    init: str = "harness"


def _log(msg: str) -> None:
    print(f"run-guest: {msg}", file=sys.stderr, flush=True)


def _die_with_parent() -> None:
    """QEMU gets SIGKILL when the runner dies, whatever kills the runner."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _machine_key() -> str:
    try:
        mid = Path("/etc/machine-id").read_text().strip()
    except OSError:
        mid = platform.node()
    return f"{mid}-{platform.release()}"


def qemu_parts(cfg: GuestConfig, mode: str, cmd_file: Path | None, accel: str) -> dict:
    """The pieces of the QEMU command line: kernel, cpu, memory, the rest, -append.

    Shared by run_command() and the labgrid QEMUDriver environment (which
    adds its own serial socket and QMP monitor).
    """
    guest = guest_arch.pieces(cfg.arch, cfg.variant)
    if not guest_arch.native(cfg.arch):
        accel = "tcg"
    shares = [("root", guest.root, True), ("mods", guest.modules, True), ("repo", paths.REPO, False)]
    extra = []
    for i, (p, ro) in enumerate(cfg.shares):
        tag = f"share{i}"
        shares.append((tag, p, ro))
        extra.append(f"{tag}={p}={'ro' if ro else 'rw'}")
    # passthrough keeps owners and modes (root-owned setuid files, /dev perms);
    # it needs QEMU to run as root, otherwise the mapping is lost.
    model = "passthrough" if os.geteuid() == 0 else "none"
    args = ["-smp", str(cfg.cpus), "-nodefaults", "-no-reboot", "-monitor", "none",
            "-initrd", str(guest.initrd), "-device", "virtio-rng-pci"]
    args += ["-accel", "kvm"] if accel == "kvm" else ["-accel", "tcg,thread=multi"]
    for i, (tag, p, ro) in enumerate(shares):
        fs = f"local,id=fs{i},path={p},security_model={model}" + (",readonly=on" if ro else "")
        args += ["-fsdev", fs, "-device", f"virtio-9p-pci,fsdev=fs{i},mount_tag={tag}"]
    append = [
        f"console={guest.console}", "panic=-1", "oops=panic", "mitigations=off", "no_hash_pointers",
        f"daedalus.repo={paths.REPO}", f"daedalus.mode={mode}",
    ]
    if extra:
        append.append("daedalus.shares=" + ",".join(extra))
    if cmd_file:
        append.append(f"daedalus.cmd={cmd_file}")
    if cfg.modules:
        append.append("daedalus.modules=" + ",".join(cfg.modules))
    if cfg.udev:
        append.append("daedalus.udev=1")
    if cfg.init == "systemd":
        # status lines on the console: a stuck boot shows where it stuck
        append += ["daedalus.init=systemd", "systemd.show_status=1", "systemd.firstboot=0"]
    return {
        "qemu": guest.qemu,
        "kernel": str(guest.kernel),
        "cpu": os.environ.get("DAEDALUS_KVM_CPU", "host") if accel == "kvm" else "max",
        "memory": f"{cfg.memory_mb}M",
        "machine": guest.machine,
        "extra_args": args,
        "append": " ".join(append),
    }


def qemu_argv(cfg: GuestConfig, mode: str, cmd_file: Path | None, accel: str) -> list[str]:
    """The whole QEMU command line; the serial console is on QEMU's stdio."""
    p = qemu_parts(cfg, mode, cmd_file, accel)
    return [p["qemu"], "-machine", p["machine"], "-cpu", p["cpu"], "-m", p["memory"],
            "-display", "none", "-serial", "stdio", "-kernel", p["kernel"], *p["extra_args"],
            "-append", p["append"]]


@dataclass
class RunResult:
    rc: int
    output: str  # what the command printed (with any kernel lines in between)
    splats: list[str]
    run_dir: Path
    seconds: float
    boot_seconds: float | None = None  # QEMU start to the command's start


def _new_run_dir(variant: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    d = paths.OUT / "qemu" / f"{stamp}-{variant}-{os.getpid()}-{time.monotonic_ns() % 100000}"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _section(text: str, name: str) -> str:
    m = re.search(rf"@@DAEDALUS-{name}-BEGIN@@\r?\n(.*?)@@DAEDALUS-{name}-END@@", text, re.S)
    return m.group(1) if m else ""


def run_command(cfg: GuestConfig, command: str, timeout: float = 900, echo: bool = True,
                accel: str | None = None) -> RunResult:
    """Boots the guest, runs `command` (bash) in the repository, powers off.

    A kernel splat anywhere in the console or the final dmesg, a panic, or a
    hang past `timeout` fails the run; the console log stays in out/qemu/.
    """
    accel = accel or cfg.accel or (probe_accel() if guest_arch.native(cfg.arch) else "tcg")
    run_dir = _new_run_dir(cfg.variant)
    cmd_file = run_dir / "cmd.sh"
    cmd_file.write_text(command + "\n")
    argv = qemu_argv(cfg, "run", cmd_file, accel)
    (run_dir / "qemu-argv.txt").write_text(" ".join(argv) + "\n")
    console_path = run_dir / "console.log"
    if echo:
        _log(f"booting the {cfg.arch} {cfg.variant} guest ({accel}, {cfg.cpus} vCPUs, {cfg.memory_mb} MiB); console log {console_path}")
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
    console = bytearray()
    in_cmd = False
    rc = None
    boot_seconds = None
    timed_out = False
    os.set_blocking(proc.stdout.fileno(), False)
    pending = b""
    with console_path.open("wb") as log:
        while True:
            if time.monotonic() - start > timeout:
                timed_out = True
                proc.kill()
                break
            try:
                chunk = proc.stdout.read()
            except BlockingIOError:
                chunk = None
            if chunk:
                log.write(chunk)
                log.flush()
                console += chunk
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    line = raw.decode("utf-8", "replace").rstrip("\r")
                    if "@@DAEDALUS-CMD-BEGIN@@" in line:
                        in_cmd = True
                        boot_seconds = time.monotonic() - start
                        if echo:
                            _log(f"guest up after {boot_seconds:.0f} s, running the command")
                        continue
                    m = MARK_END.search(line)
                    if m:
                        in_cmd = False
                        rc = int(m.group(1))
                        continue
                    if in_cmd and echo:
                        print(line, flush=True)
            elif proc.poll() is not None:
                break
            else:
                time.sleep(0.05)
    proc.wait()
    seconds = time.monotonic() - start
    text = console.decode("utf-8", "replace")
    dmesg = _section(text, "DMESG")
    (run_dir / "dmesg.txt").write_text(dmesg)
    kmemleak = _section(text, "KMEMLEAK")
    if kmemleak:
        (run_dir / "kmemleak.txt").write_text(kmemleak)
    out_begin = text.find("@@DAEDALUS-CMD-BEGIN@@")
    out_end = text.find("@@DAEDALUS-CMD-END")
    output = text[out_begin + 24:out_end] if out_begin >= 0 and out_end > out_begin else ""
    # The command's own output may mention "WARNING:" (v4l2-compliance does),
    # so only the kernel's logs are scanned: dmesg, kmemleak, and the console
    # outside the command's output (a panic never reaches the dmesg dump).
    kernel_text = dmesg + kmemleak + (text[:max(out_begin, 0)] if out_begin >= 0 else text)
    if out_end >= 0:
        kernel_text += text[out_end:].replace(dmesg, "")
    else:
        kernel_text = text  # no end marker: a panic or hang, whatever printed it
    splats = find_splats(kernel_text)
    say = _log if echo else (lambda _msg: None)
    if timed_out:
        final = RC_TIMEOUT
        say(f"FAIL: no end after {timeout:.0f} s (hang); console log {console_path}")
    elif rc is None:
        final = RC_BOOT
        say(f"FAIL: the guest stopped before the command finished (panic or boot failure); console log {console_path}")
    elif splats:
        final = RC_SPLAT
        say(f"FAIL: kernel splat(s) in the console/dmesg; console log {console_path}")
    else:
        final = rc
    for s in splats[:20]:
        say(f"  splat: {s}")
    if echo:
        _log(f"done in {seconds:.0f} s, exit status {final}")
    return RunResult(final, output, splats, run_dir, seconds, boot_seconds)


def probe_accel() -> str:
    """kvm if a guest really boots with KVM on this machine, else tcg; cached."""
    forced = os.environ.get("DAEDALUS_ACCEL")
    if forced in ("kvm", "tcg"):
        return forced
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg"
    verdict_file = paths.CACHE / f"kvm-verdict-{_machine_key()}"
    if verdict_file.exists():
        return verdict_file.read_text().strip()
    _log("probing KVM (a guest boot with -enable-kvm, 45 s at most; nested KVM often fails)")
    res = run_command(GuestConfig(), "true", timeout=45, echo=False, accel="kvm")
    verdict = "kvm" if res.rc == 0 else "tcg"
    _log(f"KVM probe: {verdict} (boot {'worked' if verdict == 'kvm' else 'failed'} in {res.seconds:.0f} s); cached in {verdict_file}")
    verdict_file.parent.mkdir(parents=True, exist_ok=True)
    verdict_file.write_text(verdict + "\n")
    return verdict
