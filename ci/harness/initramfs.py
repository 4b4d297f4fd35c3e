"""The stage-1 initramfs: busybox (static, from the host) and our init script.

Written as a newc cpio by hand so no root (mknod) or cpio tool is needed, and
cached by content so every boot reuses the same file.
"""

import hashlib
import shutil
import stat
from pathlib import Path

from .paths import CACHE, REPO

INIT_SCRIPT = REPO / "ci" / "qemu" / "initramfs-init.sh"


def _find_busybox() -> Path:
    for cand in ("/bin/busybox", "/usr/bin/busybox"):
        if Path(cand).is_file():
            return Path(cand)
    found = shutil.which("busybox")
    if not found:
        raise FileNotFoundError("busybox (static) is needed on the host: apt-get install busybox-static")
    return Path(found)


def _entry(name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0), ino: int = 0) -> bytes:
    namez = name.encode() + b"\0"
    fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(namez), 0]
    head = b"070701" + b"".join(f"{f:08x}".encode() for f in fields)
    out = head + namez
    out += b"\0" * (-len(out) % 4)
    out += data
    out += b"\0" * (-len(out) % 4)
    return out


def initramfs() -> Path:
    """Path of the cached initramfs for the current init script and busybox."""
    busybox = _find_busybox().read_bytes()
    init = INIT_SCRIPT.read_bytes()
    key = hashlib.sha256(busybox + init).hexdigest()[:16]
    path = CACHE / "initramfs" / f"initramfs-{key}.cpio"
    if path.exists():
        return path
    d = stat.S_IFDIR | 0o755
    entries = [
        ("bin", d, b"", (0, 0)),
        ("dev", d, b"", (0, 0)),
        ("proc", d, b"", (0, 0)),
        ("sys", d, b"", (0, 0)),
        ("dev/console", stat.S_IFCHR | 0o600, b"", (5, 1)),
        ("bin/busybox", stat.S_IFREG | 0o755, busybox, (0, 0)),
        ("init", stat.S_IFREG | 0o755, init, (0, 0)),
    ]
    blob = b"".join(_entry(n, m, data, rdev, ino=i + 1) for i, (n, m, data, rdev) in enumerate(entries))
    blob += _entry("TRAILER!!!", 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(blob)
    tmp.rename(path)
    return path
