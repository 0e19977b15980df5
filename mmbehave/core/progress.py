"""The one place that decides whether to draw progress bars."""

from __future__ import annotations

import sys


def show_progress(wanted: bool = True) -> bool:
    """Bars for a person at a terminal; log files and CI get one line per epoch (or per run) instead."""
    return bool(wanted) and sys.stderr.isatty()
