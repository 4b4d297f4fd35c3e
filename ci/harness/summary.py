"""Reads pytest's JUnit XML files and prints the one closing line `N passed, M failed`.

A skip counts as a failure unless its reason starts with "no board:" (the
only documented reason to skip); exit status 0 only with no failure.
  python3 -m ci.harness.summary [--extra-failures N] JUNIT.xml...
"""

import sys
import xml.etree.ElementTree as ET

ALLOWED_SKIP = "no board:"


def count(junit_path: str) -> tuple[int, int, int, list[str]]:
    passed = failed = skipped = 0
    bad = []
    for case in ET.parse(junit_path).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        fail = case.find("failure") is not None or case.find("error") is not None
        skip = case.find("skipped")
        if fail:
            failed += 1
            bad.append(f"FAILED {name}")
        elif skip is not None:
            reason = (skip.get("message") or "").removeprefix("Skipped: ").strip()
            if reason.startswith(ALLOWED_SKIP):
                skipped += 1
            else:
                failed += 1
                bad.append(f"SKIPPED (counts as failed) {name}: {reason}")
        else:
            passed += 1
    return passed, failed, skipped, bad


def main() -> int:
    args = sys.argv[1:]
    extra = 0
    if args[:1] == ["--extra-failures"]:
        extra, args = int(args[1]), args[2:]
    passed = failed = skipped = 0
    bad = []
    for path in args:
        try:
            p, f, s, b = count(path)
        except (OSError, ET.ParseError) as e:
            print(f"summary: no test report from {path} ({e}): counted as one failure")
            p, f, s, b = 0, 1, 0, []
        passed, failed, skipped, bad = passed + p, failed + f, skipped + s, bad + b
    failed += extra
    for line in bad:
        print(line)
    print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
