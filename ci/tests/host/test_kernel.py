"""The module builds warning-free (W=1) for the QEMU guest kernel and for
Debian's arm64 and arm64-16k (Pi 5 page size) headers, and passes checkpatch."""

import re
import shutil
import subprocess

import pytest

from ci.harness import paths

from ci.harness.hostrun import tail

WARNING = re.compile(r"\bwarning:", re.I)


def _kbuild_copy(flavour: str):
    """A copy of kernel/ for one flavour: out-of-tree builds write next to the sources."""
    dst = paths.OUT / "kbuild" / flavour
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(paths.REPO / "kernel", dst,
                    ignore=shutil.ignore_patterns("*.o", "*.ko", "*.mod", "*.mod.c", ".*.cmd", "*.symvers",
                                                  "modules.order", ".tmp_versions"))
    return dst


def test_module_for_guest_kernel(host_run):
    """Builds kernel/daedalus_v4l2.ko in place: the guest suite loads this one."""
    kdir = paths.guest_kernel("release") / "src"
    res = host_run(["make", "-C", "kernel", f"KDIR={kdir}", "W=1"], "kbuild-guest")
    assert res.returncode == 0, tail(res.stdout)
    assert not WARNING.search(res.stdout), tail(res.stdout)
    ko = paths.REPO / "kernel/daedalus_v4l2.ko"
    vermagic = subprocess.run(["modinfo", "-F", "vermagic", str(ko)], capture_output=True, text=True).stdout
    assert vermagic.startswith(paths.kernel_release(kdir.parent) + " "), vermagic


@pytest.fixture(scope="module")
def debian_headers(host_run):
    res = host_run([str(paths.REPO / "ci/fetch-headers.sh"), "arm64", "arm64-16k"], "fetch-headers")
    assert res.returncode == 0, tail(res.stdout)
    kdirs = [line for line in res.stdout.splitlines() if line.startswith("/")]
    return dict(zip(["arm64", "arm64-16k"], kdirs[-2:]))


@pytest.mark.parametrize("flavour", ["arm64", "arm64-16k"])
def test_module_for_debian_arm64(host_run, debian_headers, flavour):
    src = _kbuild_copy(flavour)
    res = host_run(["make", "-C", str(src), f"KDIR={debian_headers[flavour]}", "ARCH=arm64",
                    "CROSS_COMPILE=aarch64-linux-gnu-", "W=1"], f"kbuild-{flavour}")
    assert res.returncode == 0, tail(res.stdout)
    assert not WARNING.search(res.stdout), tail(res.stdout)
    info = subprocess.run(["readelf", "-h", str(src / "daedalus_v4l2.ko")], capture_output=True, text=True).stdout
    assert "AArch64" in info, info


def test_checkpatch(host_run):
    kdir = paths.guest_kernel("release") / "src"
    res = host_run(["make", "-C", "kernel", "check", f"KDIR={kdir}"], "checkpatch")
    assert res.returncode == 0, tail(res.stdout)
