"""Atomic file writes: a reader sees either the old file or the complete new one.

Each writer fills a temporary file in the destination folder, flushes it to disk and then
renames it over the destination with :func:`os.replace`, which is atomic on POSIX and
Windows when both paths are on the same file system.
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
        with os.fdopen(handle, "wb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary_name, destination)
    except BaseException:
        Path(temporary_name).unlink(missing_ok=True)
        raise


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
