"""Where the harness finds the repository, its caches and the built artefacts."""

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("DAEDALUS_CACHE", Path.home() / ".cache" / "daedalus-v4l2"))
OUT = REPO / "out"
STREAMS = CACHE / "streams"


def _cached_build(script: Path, *args: str) -> Path:
    """Runs one of the cached builders (they print their result dir on stdout)."""
    res = subprocess.run([str(script), *args], check=True, stdout=subprocess.PIPE, text=True)
    return Path(res.stdout.strip().splitlines()[-1])


def guest_kernel(variant: str = "release") -> Path:
    """The guest kernel cache dir (bzImage, src/, modroot/); builds it if needed."""
    return _cached_build(REPO / "ci" / "guest-kernel" / "build.sh", variant)


def guest_root() -> Path:
    """The Debian 13 guest root directory; builds it if needed."""
    return _cached_build(REPO / "ci" / "guest-root" / "build.sh")


def bookworm_root() -> Path:
    """The Debian 12 side root (GStreamer 1.22, FFmpeg 5.1) the guest chroots into; builds it if needed."""
    return _cached_build(REPO / "ci" / "bookworm-root" / "build.sh")


def kernel_release(kdir: Path) -> str:
    """The `uname -r` of a built guest kernel."""
    return (kdir / "src" / "include" / "config" / "kernel.release").read_text().strip()


def arm64_kernel() -> Path:
    """Debian's arm64-16k kernel cache dir (vmlinuz, config, modroot/, kdir); fetches it if needed."""
    return _cached_build(REPO / "ci" / "guest-aarch64" / "kernel.sh")


def arm64_kernel_release(kdir: Path) -> str:
    """The `uname -r` of that kernel: its cache dir is named after it."""
    return kdir.name


def arm64_root() -> Path:
    """The arm64 Debian 13 guest root directory; builds it if needed."""
    return _cached_build(REPO / "ci" / "guest-aarch64" / "root.sh")
