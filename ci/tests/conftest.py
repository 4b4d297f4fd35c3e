"""Shared by the host and guest suites: repository on sys.path, the figures
table at the end, the rule that only a documented missing board may skip."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from ci.harness import paths, report  # noqa: E402

# A skip is only acceptable for a missing board; ci/harness/summary.py counts
# any other skip as a failure, and the tests never skip otherwise.
ALLOWED_SKIP_PREFIX = "no board:"


def pytest_addoption(parser):
    parser.addoption("--kernel-variant", default="release", choices=["release", "debug"],
                     help="guest kernel for the guest suite")


def pytest_collection_modifyitems(session, config, items):
    # host tests build what the guest tests run: keep them first
    items.sort(key=lambda it: 1 if "/guest/" in str(it.fspath) else 0)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not report.FIGURES:
        return
    terminalreporter.section("figures")
    lines = [f"{name:50} {value}" for name, value in report.FIGURES]
    for line in lines:
        terminalreporter.write_line(line)
    # one file per run, named like its JUnit report (test-all runs the suite
    # several times: junit-aarch64.xml -> figures-aarch64.txt)
    junit = config.getoption("xmlpath", None)
    suffix = Path(junit).stem.removeprefix("junit") if junit else ""
    paths.OUT.mkdir(parents=True, exist_ok=True)
    (paths.OUT / f"figures{suffix}.txt").write_text("\n".join(lines) + "\n")
