"""Nothing a user has is destroyed by a command: an output is never one of the command's inputs, never inside a
source it reads, and a folder mmbehave did not make is never emptied or overwritten.

    refuse_output_over_inputs(output, key="output", inputs=[clips..., checkpoint], sources=[package folder])
    refuse_foreign_folder(root, made_by_us=..., what=..., hint=...)

Each check raises ``InputError`` in one line naming the key, the file and the fix, before any work starts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable

from mmbehave.core.errors import InputError

NAMES_SHOWN = 4  # entries named in a message before "(+N more)"


def resolved(path: str | os.PathLike) -> Path:
    """The absolute path with symlinks followed (as far as they exist): two spellings of one file compare equal."""
    return Path(path).expanduser().resolve()


def is_within(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """Whether ``path`` is ``folder`` or lies below it (both resolved)."""
    path, folder = resolved(path), resolved(folder)
    return path == folder or folder in path.parents


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two existing paths are one file (hard links included)."""
    a, b = Path(a).expanduser(), Path(b).expanduser()
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def refuse_output_over_inputs(output: str | os.PathLike, *, key: str, inputs: Iterable[str | os.PathLike] = (),
                              sources: Iterable[str | os.PathLike] = ()) -> None:
    """InputError when ``output`` (the value of ``key=``) is one of ``inputs`` or lies inside one of ``sources``
    (folders the command reads: writing there would change what it reads, or replace what the user keeps)."""
    target = resolved(output)
    for given in inputs:
        if resolved(given) == target or same_file(given, target):
            raise InputError(f"{key}={output} is one of this command's inputs ({given}); writing there would replace "
                             f"it. Choose another {key}=.")
    for folder in sources:
        if is_within(target, folder):
            raise InputError(f"{key}={output} lies inside {folder}, which this command reads; writing there would change "
                             f"or replace its files. Choose a {key}= outside it.")


def describe_entries(folder: Path) -> str:
    """What a folder holds, in a few words: ``raw/, notes.txt, clips/ (+3 more)``."""
    entries = sorted(folder.iterdir(), key=lambda p: p.name)
    names = [f"{p.name}/" if p.is_dir() else p.name for p in entries[:NAMES_SHOWN]]
    more = f" (+{len(entries) - NAMES_SHOWN} more)" if len(entries) > NAMES_SHOWN else ""
    return ", ".join(names) + more


def refuse_foreign_folder(root: Path, *, key: str, made_by_us: Callable[[Path], bool], what: str, hint: str) -> None:
    """InputError when ``root`` exists and holds anything, but ``made_by_us(root)`` does not recognise it.

    ``what``: what the command would do there ("generate the synthetic benchmark"); ``hint``: what the user
    probably meant. An empty folder, or none, is fine."""
    if not root.exists():
        return
    if not root.is_dir():
        raise InputError(f"{key}={root} is a file, not a folder; {hint}")
    if any(root.iterdir()) and not made_by_us(root):
        raise InputError(f"{key}={root} holds {describe_entries(root)}, which mmbehave did not make, so it will not "
                         f"{what} there (nothing was changed). {hint}")
