"""Last: everything stops cleanly and the module leaves (dmesg checked by the
fixture, kmemleak at session end on the debug kernel)."""

from ci.harness.stack import CHANNEL


def test_stop_and_unload(target, stack):
    stack.up()
    stack.stop_daemon()
    stack.unload_module()
    assert not stack.module_loaded()
    assert not target.run(f"test -e {CHANNEL}").ok
    assert not target.run("lsmod | grep -q '^daedalus_v4l2 '").ok
