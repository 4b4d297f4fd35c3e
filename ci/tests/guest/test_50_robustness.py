"""The daemon dying mid-decode, a restart, the hostile channel tester."""

from ci.harness import report

from .decode import daedalus_decode


def test_daemon_killed_mid_decode_then_restarted(target, stack, running, manifest):
    stream = manifest["h264-1920x1080"]
    # a decode in the background, the daemon killed under it: the client must
    # get an error (or finish) within a bounded time, never hang
    cmd = daedalus_decode(stack, running.video, stream)
    target.run(f"(timeout 120 {cmd} >/tmp/killed-decode.log 2>&1; echo $? >/tmp/killed-decode.rc) &")
    target.run("sleep 1")
    stack.stop_daemon(signal="KILL")
    res = target.run("for i in $(seq 120); do test -e /tmp/killed-decode.rc && break; sleep 1; done; "
                     "cat /tmp/killed-decode.rc", timeout=180)
    rc = res.stdout.strip()
    assert rc and rc != "124", "client hung after the daemon died:\n" + target.run(
        "cat /tmp/killed-decode.log").stdout
    target.run("rm -f /tmp/killed-decode.rc /tmp/killed-decode.log")
    # a restarted daemon serves new sessions bit-exact
    stack.start_daemon()
    again = target.run(daedalus_decode(stack, running.video, manifest["h264-320x240"]) + " 2>&1", timeout=600)
    assert again.rc == 0, f"decode after restart failed:\n{again.stdout[-3000:]}\n{stack.log_tail()}"
    report.figure("client exit status after daemon SIGKILL", rc)


def test_chan_fault(target, stack, running):
    # the fault tester speaks the channel itself: the daemon must be away
    stack.stop_daemon()
    res = target.run(f"{stack.bin('daedalus-chan-fault')} 2>&1", timeout=600)
    assert res.rc == 0, f"daedalus-chan-fault failed ({res.rc}):\n{res.stdout[-4000:]}"
    report.figure("daedalus-chan-fault", res.stdout.strip().splitlines()[-1])
    stack.start_daemon()
