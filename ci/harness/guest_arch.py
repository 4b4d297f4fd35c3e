"""What differs between the QEMU guests by architecture: the QEMU binary and
machine, the serial console, and where the kernel, its modules, the root and
the stage-1 initramfs come from.

- x86_64: our guest kernel (ci/guest-kernel/, release or debug), the Debian 13
  root of ci/guest-root/, the host's busybox.
- aarch64: Debian's 16K-page arm64 kernel (the Pi 5's page size, fetched by
  ci/guest-aarch64/kernel.sh at the ABI of the headers the module is built
  against), the arm64 Debian 13 root of ci/guest-aarch64/root.sh, Debian's
  arm64 busybox plus the 9p/overlay modules that kernel has as modules.
  TCG only (this is an x86 host); no debug variant.
"""

import os
import platform
from dataclasses import dataclass
from pathlib import Path

from . import paths
from .initramfs import ROOT_MODULES, arm64_busybox, initramfs, module_closure

ARCHES = ("x86_64", "aarch64")


@dataclass(frozen=True)
class GuestPieces:
    qemu: str  # the qemu-system binary
    machine: str
    console: str  # the kernel's console= (the serial line the harness talks on)
    kernel: Path
    modules: Path  # the lib/modules directory shared as the guest's /lib/modules
    root: Path
    initrd: Path


def native(arch: str) -> bool:
    """Whether KVM could run this guest here at all (same architecture)."""
    return platform.machine() == arch


def pieces(arch: str, variant: str) -> GuestPieces:
    if arch == "x86_64":
        kdir = paths.guest_kernel(variant)
        return GuestPieces(
            qemu="qemu-system-x86_64",
            machine=os.environ.get("DAEDALUS_QEMU_MACHINE", "q35"),
            console="ttyS0",
            kernel=kdir / "bzImage",
            modules=kdir / "modroot" / "lib" / "modules",
            root=paths.guest_root(),
            initrd=initramfs(),
        )
    if arch == "aarch64":
        if variant != "release":
            raise ValueError(f"the aarch64 guest runs Debian's kernel only, no '{variant}' variant")
        kdir = paths.arm64_kernel()
        modules = kdir / "modroot" / "lib" / "modules"
        release = paths.arm64_kernel_release(kdir)
        stage1 = module_closure(modules / release, ROOT_MODULES)
        return GuestPieces(
            qemu="qemu-system-aarch64",
            machine="virt",
            console="ttyAMA0",
            kernel=kdir / "vmlinuz",
            modules=modules,
            root=paths.arm64_root(),
            initrd=initramfs(arm64_busybox(), stage1),
        )
    raise ValueError(f"unknown guest architecture '{arch}' ({', '.join(ARCHES)})")
