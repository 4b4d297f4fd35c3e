"""v4l2-compliance on our decoder node and media node, daemon running."""

import re

from ci.harness import report


def _run(target, args: str, label: str) -> None:
    res = target.run(f"v4l2-compliance -C never {args} 2>&1", timeout=600)
    m = re.search(r"Total for .*: (\d+), Succeeded: (\d+), Failed: (\d+), Warnings: (\d+)", res.stdout)
    assert m, res.stdout[-4000:]
    report.figure(f"v4l2-compliance {label}", f"{m.group(1)} tests, {m.group(3)} failed, {m.group(4)} warnings")
    fails = "\n".join(line for line in res.stdout.splitlines() if "fail:" in line or "FAIL" in line)
    assert int(m.group(3)) == 0 and res.rc == 0, f"{fails}\n---\n{res.stdout[-3000:]}"


def test_compliance_video(target, compliance_running):
    _run(target, f"-d {compliance_running.video}", "video node")


def test_compliance_media(target, compliance_running):
    # -m also tests the video node behind the media node
    _run(target, f"-m {compliance_running.media}", "media node")


def test_compliance_with_av1_announced(target, running):
    """What users who run v4l2-compliance on the shipped configuration see.
    The daemon announces AV1 ('AV01', the stateful V4L2_PIX_FMT_AV1 of the
    media tree since January 2026). v4l2-compliance before 1.32.0 returns
    from determine_codec_mask() at the first compressed OUTPUT format it does
    not know, so it tests the node as a plain M2M device and fails it for
    having MIN_BUFFERS_FOR_CAPTURE (v4l2-test-controls.cpp:1180 in 1.30.1);
    v4l-utils commit 8d92b9bf (1.32.0) added AV1 there. So: exactly that one
    failure with an older tool, none with 1.32.0 or later."""
    version = target.run("v4l2-compliance --version 2>&1").stdout
    m = re.search(r"(\d+)\.(\d+)\.(\d+)", version)
    assert m, version
    res = target.run(f"v4l2-compliance -C never -d {running.video} 2>&1", timeout=600)
    totals = re.search(r"Total for .*: (\d+), Succeeded: (\d+), Failed: (\d+), Warnings: (\d+)", res.stdout)
    assert totals, res.stdout[-4000:]
    fails = [line.strip() for line in res.stdout.splitlines() if "fail:" in line]
    report.figure(f"v4l2-compliance {m.group(0)}, AV1 announced",
                  f"{totals.group(1)} tests, {totals.group(3)} failed")
    if (int(m.group(1)), int(m.group(2))) >= (1, 32):
        assert int(totals.group(3)) == 0, "\n".join(fails)
    else:
        assert int(totals.group(3)) == 1 and len(fails) == 1 and \
            "v4l2-test-controls.cpp" in fails[0], "\n".join(fails) + "\n---\n" + res.stdout[-3000:]
