"""Credentials never reach logs, params, tags or artifacts.

A password can arrive inside a URI (``MLFLOW_TRACKING_URI=http://user:PASSWORD@host``,
``postgresql://user:PASSWORD@db/optuna``, on the command line or in the environment). ``redact`` replaces the
password of every URI in a text by ``***``; the commands apply it to everything they write:

- stdout and stderr (``RedactingStream``: also what libraries print, such as MLflow's run links),
- log files (``RedactingFilter`` on every logging handler),
- MLflow params, tags and the config artifact, checkpoints' stored config, Hydra's ``.hydra/`` records.

The credential-free way is the environment: ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` for an
MLflow server, ``PGPASSWORD`` or ``~/.pgpass`` for PostgreSQL.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, TextIO

# scheme://user:password@  (the user part may be empty); the password is anything up to the '@' before the host.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^:@/\s'\"]*):(?P<password>[^@/\s'\"]+)@")
MASK = "***"


def redact(text: Any) -> Any:
    """``text`` with the password of every URI in it replaced by ***; non-strings come back unchanged."""
    if not isinstance(text, str) or "://" not in text:
        return text
    return _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@" if m["password"] != MASK else m[0], text)


def has_password(text: Any) -> bool:
    return isinstance(text, str) and redact(text) != text


class RedactingFilter(logging.Filter):
    """Rewrites a log record's message, and the traceback and stack it carries, with their passwords redacted
    (attached to handlers, so that records propagated from any logger pass through it). A traceback is
    formatted here once and kept as the record's ``exc_text``, which formatters print instead of formatting
    ``exc_info`` again: Hydra's "job failed" log carries the exception that named the URI."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if has_password(message):
            record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class RedactingStream:
    """A text stream that redacts passwords in what is written to it, and is the wrapped stream otherwise."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(redact(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def redact_standard_streams() -> None:
    import sys

    if not isinstance(sys.stdout, RedactingStream):
        sys.stdout = RedactingStream(sys.stdout)
    if not isinstance(sys.stderr, RedactingStream):
        sys.stderr = RedactingStream(sys.stderr)


def redact_log_handlers() -> None:
    """A RedactingFilter on every handler logging is configured with now (Hydra's console and file logs)."""
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in list(logging.root.manager.loggerDict))]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter())


def redact_files(folder: Path, pattern: str = "*.yaml") -> list[Path]:
    """Rewrite the files of ``folder`` that hold a password (Hydra's ``.hydra/`` record of the command line)."""
    from mmbehave.core.atomic import write_text_atomic

    rewritten = []
    for path in sorted(folder.glob(pattern)) if folder.is_dir() else []:
        text = path.read_text()
        if has_password(text):
            write_text_atomic(path, redact(text))
            rewritten.append(path)
    return rewritten
