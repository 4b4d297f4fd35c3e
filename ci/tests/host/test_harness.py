"""The harness itself: splat detection, the initramfs, the streams, and the
QEMU runner's exit statuses (command status, splat, panic, hang)."""

import json
import lzma
import subprocess

import pytest

from ci.harness import paths, qemu
from ci.harness.initramfs import ROOT_MODULES, initramfs, module_closure
from ci.harness.splat import find_splats
from ci.harness.streams import SPECS, streams


def test_splat_patterns():
    clean = "[    1.0] vicodec: registered\n[    2.0] daedalus_v4l2: channel open\n"
    assert find_splats(clean) == []
    for line in [
        "[    3.1] WARNING: CPU: 1 PID: 42 at drivers/media/foo.c:10 bar+0x1/0x2",
        "[    3.1] BUG: KASAN: slab-use-after-free in baz+0x10/0x20",
        "[    3.1] WARNING: possible circular locking dependency detected",
        "unreferenced object 0xffff888003f0c000 (size 64):",
        "[    3.1] Oops: general protection fault, probably for non-canonical address",
        "[    3.1] Kernel panic - not syncing: Fatal exception",
    ]:
        assert find_splats(clean + line + "\n") == [line], line


def test_initramfs_is_a_cpio_with_init():
    listing = subprocess.run(["cpio", "-it", "--quiet"], stdin=initramfs().open("rb"),
                             capture_output=True, text=True, check=True).stdout.split()
    assert {"init", "bin/busybox", "dev/console"} <= set(listing)


def test_stage1_modules_load_after_their_dependencies(tmp_path):
    """The aarch64 initramfs insmods Debian's 9p/overlay modules in this order."""
    (tmp_path / "modules.dep").write_text(
        "kernel/fs/9p/9p.ko.xz: kernel/net/9p/9pnet.ko.xz kernel/fs/netfs/netfs.ko.xz\n"
        "kernel/net/9p/9pnet_virtio.ko.xz: kernel/net/9p/9pnet.ko.xz\n"
        "kernel/net/9p/9pnet.ko.xz:\n"
        "kernel/fs/netfs/netfs.ko.xz:\n"
        "kernel/fs/overlayfs/overlay.ko.xz:\n"
        "kernel/drivers/media/test-drivers/vicodec/vicodec.ko.xz:\n")
    order = [p.name for p in module_closure(tmp_path, ROOT_MODULES)]
    assert order == ["9pnet.ko.xz", "9pnet_virtio.ko.xz", "netfs.ko.xz", "9p.ko.xz", "overlay.ko.xz"]
    with pytest.raises(FileNotFoundError):
        module_closure(tmp_path, ["virtio_blk"])


def test_initramfs_carries_stage1_modules_decompressed(tmp_path):
    plain = b"\x7fELF" + bytes(range(256)) * 4
    ko = tmp_path / "9p.ko.xz"
    ko.write_bytes(lzma.compress(plain))
    cpio = initramfs(modules=[ko])
    subprocess.run(["cpio", "-idm", "--quiet", "-D", str(tmp_path / "x")], stdin=cpio.open("rb"), check=True)
    assert (tmp_path / "x/stage1/9p.ko").read_bytes() == plain
    assert (tmp_path / "x/stage1/order").read_text() == "/stage1/9p.ko\n"


def test_every_target_declares_arch_page_size():
    """test_page_size compares against this; qemu.py boots by the arch."""
    from ci.harness.target import target_option

    for env in sorted((paths.REPO / "ci" / "targets").glob("*.yaml")):
        assert target_option(env, "daedalus_page_size") in (4096, 16384, 65536), env
        if target_option(env, "daedalus_kind") == "qemu":
            assert target_option(env, "daedalus_arch") in qemu.guest_arch.ARCHES, env


def test_streams_have_the_frames_they_claim():
    entries = streams()
    assert [e["name"] for e in entries] == [s.name for s in SPECS]
    for e in entries:
        out = subprocess.run(
            ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
             "stream=nb_read_frames", "-of", "json", e["path"]], capture_output=True, text=True, check=True)
        frames = int(json.loads(out.stdout)["streams"][0]["nb_read_frames"])
        assert frames == e["total_frames"], (e["name"], frames)


# The timeout covers the boot too: generous where the command ends by itself
# (a loaded 2-core machine boots the TCG guest in 10-40 s), short for the hang.
@pytest.mark.parametrize("command,expected,timeout", [
    ("exit 7", 7, 180),
    ("echo l > /proc/sysrq-trigger; sleep 1", qemu.RC_SPLAT, 180),  # a backtrace counts as a splat
    ("echo c > /proc/sysrq-trigger", qemu.RC_BOOT, 180),  # panic
    ("sleep 600", qemu.RC_TIMEOUT, 60),
], ids=["status", "splat", "panic", "hang"])
def test_run_guest_exit_status(command, expected, timeout):
    res = subprocess.run([str(paths.REPO / "ci/qemu/run-guest.sh"), "--timeout", str(timeout), "--", command],
                         capture_output=True, text=True, timeout=timeout + 120)
    assert res.returncode == expected, res.stderr[-2000:]
