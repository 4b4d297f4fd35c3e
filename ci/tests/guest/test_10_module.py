"""Loading and unloading daedalus_v4l2: nodes appear, sit beside the kernel's
reference M2M drivers, and go away cleanly (no daemon needed)."""

import pytest

from ci.harness.stack import CHANNEL, DRIVER


def test_load_creates_nodes(target, stack):
    stack.unload_module()
    stack.load_module()
    devs = stack.devices()
    mode = target.run(f"stat -c %a {CHANNEL}", check=True).stdout.strip()
    assert mode == "600", f"{CHANNEL} mode {mode}"
    card = target.run(f"v4l2-ctl -d {devs.video} -D | grep 'Card type'", check=True).stdout
    assert "daedalus-v4l2" in card, card
    caps = target.run(f"v4l2-ctl -d {devs.video} -D", check=True).stdout
    assert "Video Memory-to-Memory" in caps, caps


def test_unload_load_cycles(target, stack):
    for _ in range(3):
        stack.unload_module()
        assert not stack.module_loaded()
        assert not target.run(f"test -e {CHANNEL}").ok
        stack.load_module()
        stack.devices()


@pytest.mark.reference_drivers
def test_beside_reference_drivers(target, stack):
    stack.unload_module()
    target.run("modprobe -a vicodec vim2m", check=True)
    try:
        stack.load_module()
        devs = stack.devices()
        # our nodes are ours, the reference drivers keep theirs
        for drv in ("vicodec", "vim2m"):
            assert target.run(
                f"for v in /dev/video*; do v4l2-ctl -d $v -D | grep -Eq 'Driver name *: {drv}$' && echo $v; done"
            ).stdout.split(), f"{drv} lost its nodes"
        assert target.run(f"v4l2-ctl -d {devs.video} -D | grep -Eq 'Driver name *: {DRIVER}$'").ok
        stack.unload_module()
        assert target.run("v4l2-ctl --list-devices | grep -q vicodec").ok
    finally:
        target.run("rmmod vicodec vim2m", check=True)
