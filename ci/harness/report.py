"""Figures the tests measure (frame rates, boot time), printed at the end of
the run and kept in out/figures.txt (out/figures-debug.txt, -aarch64: one
file per JUnit report)."""

FIGURES: list[tuple[str, str]] = []


def figure(name: str, value: str) -> None:
    FIGURES.append((name, value))
