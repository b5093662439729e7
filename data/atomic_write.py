"""Atomic file writes: a crash at any moment leaves the previous file or the new one, never a torn one."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from typing import IO

import numpy as np

__all__ = ["write_atomic", "write_json_atomic", "save_npy_atomic"]


def _open_temporary(path: str) -> tuple[int, str]:
    """Create ``<path>.<pid>.<random>.tmp`` next to ``path`` (mode 0o666 less the umask, unlike mkstemp)."""
    while True:
        tmp = f"{path}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue


def write_atomic(path: str | os.PathLike, write: Callable[[IO], None], binary: bool = True) -> None:
    """
    Call ``write(stream)`` on a temporary file next to ``path``, flush it to disk, then rename it over
    ``path``; the temporary file is removed if anything (Ctrl-C included) interrupts the write.

    Args:
        path: destination file; its folder is created if missing.
        write: writes the content into the open stream.
        binary: open the stream in binary (default) or text mode.
    """
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    handle, tmp = _open_temporary(path)
    try:
        with os.fdopen(handle, "wb" if binary else "w") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_json_atomic(data, path: str | os.PathLike) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically."""

    def _dump(stream):
        json.dump(data, stream, indent=2)
        stream.write("\n")

    write_atomic(path, _dump, binary=False)


def save_npy_atomic(array: np.ndarray, path: str | os.PathLike) -> None:
    """``np.save`` ``array`` to ``path`` atomically."""
    write_atomic(path, lambda stream: np.save(stream, array))
