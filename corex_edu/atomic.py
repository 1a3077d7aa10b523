"""Atomic file writes: a reader sees either the old file or the complete new one.

Each writer fills a temporary file in the destination folder, flushes it to disk and then
renames it over the destination with :func:`os.replace`, which is atomic on POSIX and
Windows when both paths are on the same file system.

:func:`tempfile.mkstemp` creates its file with mode 0600. Before writing, the temporary file
gets the mode that a plain ``open(path, "w")`` would have given: the existing destination's
mode when there is one, otherwise 0666 minus the process umask. So checkpoints, summaries and
HTML copies stay readable by the group and others whenever ordinary files are.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import torch


@contextmanager
def atomic_open(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Open a temporary binary file that replaces ``path`` only if the block succeeds."""
    destination = Path(path)
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary_name = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".tmp", dir=destination.parent)
    try:
        _set_mode(handle, destination)
        with os.fdopen(handle, "wb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary_name, destination)
    except BaseException:
        Path(temporary_name).unlink(missing_ok=True)
        raise


def _set_mode(handle: int, destination: Path) -> None:
    """Give the open temporary file the mode that ``destination`` has, or would get from ``open``."""
    if not hasattr(os, "fchmod"):  # Windows: modes there are not POSIX permission bits
        return
    try:
        mode = destination.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o666 & ~current_umask()
    os.fchmod(handle, mode)


def current_umask() -> int:
    """Return the process umask without changing it (read from /proc where possible)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    # Elsewhere the only way to read the umask is to set it and put it back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_bytes(path: str | os.PathLike[str], payload: bytes) -> None:
    """Write ``payload`` to ``path`` atomically."""
    with atomic_open(path) as stream:
        stream.write(payload)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], document: Any) -> None:
    """Write ``document`` as indented JSON to ``path`` atomically."""
    write_text(path, json.dumps(document, indent=2, sort_keys=False, allow_nan=False) + "\n")


def torch_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """Save ``obj`` with :func:`torch.save` atomically."""
    with atomic_open(path) as stream:
        torch.save(obj, stream)
