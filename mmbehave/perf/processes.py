"""Running the real commands as a user does, with their wall time and peak memory."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Finished:
    stdout: str
    stderr: str
    seconds: float
    peak_mib: float        # the child's peak resident memory


def run_command(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 1800) -> Finished:
    """``python <args>``; raises RuntimeError with the output's tail if it fails."""
    out, err = cwd / ".stdout", cwd / ".stderr"
    cwd.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(out, "w") as stdout, open(err, "w") as stderr:
        process = subprocess.Popen([sys.executable, *args], cwd=cwd, stdout=stdout, stderr=stderr,
                                   env={**os.environ, **(env or {})})
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                process.kill()
                raise RuntimeError(f"python {' '.join(args[:3])} ... ran past {timeout:.0f} s")
            time.sleep(0.05)
    seconds = time.perf_counter() - started
    result = Finished(out.read_text(), err.read_text(), seconds, usage.ru_maxrss / 1024)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"python {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result

