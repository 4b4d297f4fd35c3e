"""The stage-1 initramfs: a static busybox, our init script and, for a guest
kernel that has them as modules (Debian's arm64-16k), the modules the 9p root
and its overlay need.

Written as a newc cpio by hand so no root (mknod) or cpio tool is needed, and
cached by content so every boot reuses the same file.
"""

import hashlib
import lzma
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

from .paths import CACHE, REPO

INIT_SCRIPT = REPO / "ci" / "qemu" / "initramfs-init.sh"
# What stage 1 needs before it can mount the root, when the kernel has it as
# modules: 9p over virtio and overlayfs (their dependencies are added).
ROOT_MODULES = ["9pnet_virtio", "9p", "overlay"]


def _find_busybox() -> Path:
    for cand in ("/bin/busybox", "/usr/bin/busybox"):
        if Path(cand).is_file():
            return Path(cand)
    found = shutil.which("busybox")
    if not found:
        raise FileNotFoundError("busybox (static) is needed on the host: apt-get install busybox-static")
    return Path(found)


def arm64_busybox() -> Path:
    """Debian's busybox-static:arm64 (apt-get download), cached by version."""
    show = subprocess.run(["apt-cache", "show", "--no-all-versions", "busybox-static:arm64"],
                          capture_output=True, text=True, check=True).stdout
    version = next((ln.split(":", 1)[1].strip() for ln in show.splitlines() if ln.startswith("Version:")), "")
    if not version:
        raise FileNotFoundError("busybox-static:arm64 unknown to apt: run ci/setup-host.sh (adds arm64)")
    path = CACHE / "initramfs" / f"busybox-arm64-{version.replace(':', '_')}"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        got = subprocess.run(["apt-get", "download", "-q", "busybox-static:arm64"], cwd=tmp,
                             capture_output=True, text=True)
        if got.returncode != 0:
            raise RuntimeError(f"apt-get download busybox-static:arm64 failed:\n{got.stderr}")
        deb = next(Path(tmp).glob("busybox-static_*.deb"))
        subprocess.run(["dpkg", "-x", str(deb), f"{tmp}/x"], check=True)
        shutil.copyfile(f"{tmp}/x/bin/busybox", f"{tmp}/busybox")
        Path(f"{tmp}/busybox").rename(path)
    return path


def module_closure(modroot: Path, names: list[str]) -> list[Path]:
    """The modules `names` need, from modules.dep, in load order (dependencies first)."""
    deps: dict[str, list[str]] = {}
    for line in (modroot / "modules.dep").read_text().splitlines():
        mod, _, rest = line.partition(":")
        deps[mod] = rest.split()
    by_name = {Path(m).name.split(".ko")[0].replace("-", "_"): m for m in deps}
    order: list[str] = []

    def visit(mod: str) -> None:
        if mod in order:
            return
        for d in deps[mod]:
            visit(d)
        order.append(mod)

    for n in names:
        key = n.replace("-", "_")
        if key not in by_name:
            raise FileNotFoundError(f"module {n} not in {modroot}/modules.dep")
        visit(by_name[key])
    return [modroot / m for m in order]


def _entry(name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0), ino: int = 0) -> bytes:
    namez = name.encode() + b"\0"
    fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(namez), 0]
    head = b"070701" + b"".join(f"{f:08x}".encode() for f in fields)
    out = head + namez
    out += b"\0" * (-len(out) % 4)
    out += data
    out += b"\0" * (-len(out) % 4)
    return out


def _module_bytes(path: Path) -> bytes:
    # busybox insmod takes plain ELF; Debian ships .ko.xz (signed before
    # compression, so the plain file keeps its signature)
    data = path.read_bytes()
    return lzma.decompress(data) if path.name.endswith(".xz") else data


def initramfs(busybox: Path | None = None, modules: list[Path] | None = None) -> Path:
    """Path of the cached initramfs for the init script, busybox (default: the
    host's) and the stage-1 modules (insmod'ed in the order given)."""
    busybox_bin = (busybox or _find_busybox()).read_bytes()
    init = INIT_SCRIPT.read_bytes()
    mods = [(p.name.split(".ko")[0] + ".ko", _module_bytes(p)) for p in modules or []]
    h = hashlib.sha256(busybox_bin + init)
    for name, data in mods:
        h.update(name.encode() + data)
    path = CACHE / "initramfs" / f"initramfs-{h.hexdigest()[:16]}.cpio"
    if path.exists():
        return path
    d = stat.S_IFDIR | 0o755
    f = stat.S_IFREG
    entries = [
        ("bin", d, b"", (0, 0)),
        ("dev", d, b"", (0, 0)),
        ("proc", d, b"", (0, 0)),
        ("sys", d, b"", (0, 0)),
        ("dev/console", stat.S_IFCHR | 0o600, b"", (5, 1)),
        ("bin/busybox", f | 0o755, busybox_bin, (0, 0)),
        ("init", f | 0o755, init, (0, 0)),
    ]
    if mods:
        entries.append(("stage1", d, b"", (0, 0)))
        entries += [(f"stage1/{name}", f | 0o644, data, (0, 0)) for name, data in mods]
        order = "".join(f"/stage1/{name}\n" for name, _ in mods).encode()
        entries.append(("stage1/order", f | 0o644, order, (0, 0)))
    blob = b"".join(_entry(n, m, data, rdev, ino=i + 1) for i, (n, m, data, rdev) in enumerate(entries))
    blob += _entry("TRAILER!!!", 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{hashlib.sha256(blob).hexdigest()[:8]}")
    tmp.write_bytes(blob)
    tmp.rename(path)
    return path
