"""Runs a host command from the repository, its output kept in
out/host-logs/<name>.log; `tail` gives what a failing assertion shows."""

import subprocess
import time

from . import paths


def host_run(cmd: list[str] | str, name: str, timeout: float = 3600, env: dict | None = None,
             cwd=None) -> subprocess.CompletedProcess:
    logs = paths.OUT / "host-logs"
    logs.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    res = subprocess.run(cmd, shell=isinstance(cmd, str), cwd=cwd or paths.REPO, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         errors="replace", timeout=timeout)
    res.seconds = time.monotonic() - start
    (logs / f"{name}.log").write_text(f"$ {cmd}\n{res.stdout}\nexit {res.returncode}\n")
    return res


def tail(text: str, n: int = 60) -> str:
    return "\n".join(text.splitlines()[-n:])
