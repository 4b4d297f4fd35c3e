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
