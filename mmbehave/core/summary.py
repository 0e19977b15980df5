"""The last lines of a command: what it made, and what to type next. They go to stdout after every log line
and library message, so that a user who reads only the end of the output still finds the result."""

from __future__ import annotations

import sys


def print_summary(title: str, made: list[tuple[str, str]], next_commands: list[str] = ()) -> None:
    """``title``, then one aligned ``label  value`` line per thing made, then the next commands, one a line."""
    width = max((len(label) for label, _ in made), default=0)
    lines = [title, *(f"  {label.ljust(width)}  {value}" for label, value in made)]
    if next_commands:
        lines += ["Next:", *(f"  {command}" for command in next_commands)]
    sys.stderr.flush()  # warnings written before the summary stay before it on a shared terminal
    print("\n".join(lines), flush=True)
