"""The guest itself: userspace versions the suite relies on, and the kernel's
own reference M2M drivers passing v4l2-compliance (proves the harness, the
V4L2 core and the splat check work before our driver is involved)."""

import re

import pytest

from ci.harness import report


def test_guest_userspace(target):
    if target.kind != "qemu":
        pytest.skip("no board: versions are the image's, checked by the layer tests")
    ff = target.run("ffmpeg -hide_banner -version | head -1", check=True).stdout
    assert re.search(r"ffmpeg version 7\.1", ff), ff
    comp = target.run("v4l2-compliance --version | head -1", check=True).stdout
    assert "1.30" in comp, comp
    target.run("gst-inspect-1.0 --version", check=True)
    kernel = target.run("uname -r", check=True).stdout.strip()
    assert kernel.startswith("6.12"), kernel
    report.figure("guest kernel", kernel)


def _compliance(target, dev: str) -> str:
    res = target.run(f"v4l2-compliance -C never -d {dev} 2>&1", timeout=300)
    m = re.search(r"Total for .*: (\d+), Succeeded: (\d+), Failed: (\d+), Warnings: (\d+)", res.stdout)
    assert m, res.stdout[-3000:]
    assert int(m.group(3)) == 0 and res.rc == 0, res.stdout[-3000:]
    return m.group(0)


def test_page_size(target):
    """The page size the target declares (4096 x86_64, 16384 on the Pi 5's and
    the aarch64 guest's kernel): the module and daemon must not assume 4096."""
    expected = int(target.page_size)
    got = target.run("getconf PAGESIZE", check=True).stdout.strip()
    assert got == str(expected), got
    report.figure(f"page size ({target.env_path.stem})", got)


@pytest.mark.reference_drivers
@pytest.mark.parametrize("module,driver", [("vicodec", "vicodec"), ("vim2m", "vim2m")])
def test_reference_driver_compliance(target, module, driver):
    target.run(f"modprobe {module}", check=True)
    try:
        nodes = target.run(
            f"for v in /dev/video*; do v4l2-ctl -d $v -D 2>/dev/null | grep -Eq 'Driver name *: {driver}$' && echo $v; done"
        ).stdout.split()
        assert nodes, f"{module} registered no video node"
        summary = _compliance(target, nodes[0])
        report.figure(f"v4l2-compliance {module} {nodes[0]}", summary.split(": ", 1)[1])  # "N, Succeeded: ..."
    finally:
        target.run(f"rmmod {module}", check=True)
