"""Kernel splat detection: any of these in a console log or dmesg fails a run."""

import re

# One pattern per kind of report the kernel prints when something is wrong.
SPLAT_PATTERNS = [
    r"Kernel panic",
    r"\bBUG:",
    r"\bWARNING:",
    r"\bKASAN:",
    r"\bUBSAN:",
    r"possible circular locking dependency",
    r"possible recursive locking",
    r"inconsistent lock state",
    r"suspicious RCU usage",
    r"unreferenced object 0x",
    r"\bOops\b",
    r"general protection fault",
    r"INFO: task .* blocked for more than",
    r"watchdog: BUG: soft lockup",
    r"Call Trace:",
]
_SPLAT = re.compile("|".join(f"(?:{p})" for p in SPLAT_PATTERNS))


def find_splats(text: str) -> list[str]:
    """The lines of `text` that look like a kernel splat."""
    return [line for line in text.splitlines() if _SPLAT.search(line)]
