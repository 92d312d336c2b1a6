"""Files and folders written whole or not at all: the one atomic write of the project.

A reader (make, a notebook, a second process) never sees half a file: the content goes to a
temporary name beside the target (`.tmp-<pid>-<name>`, so two writers never share one), is flushed
to disk, and is renamed into place (a rename within one folder is atomic on POSIX filesystems); a
failed write leaves the old file, or none. `atomic_dir` does the same for a whole folder (a
checkpoint): the old folder is removed just before the new one is renamed into its place.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path


def atomic_write(final: str | Path, write: Callable[[Path], object], fsync: bool = True) -> Path:
    """Call `write(tmp)` on a temporary path beside `final`, then move it into place; return `final`.

    `fsync` also flushes the file and its folder, so the rename survives a power cut (stores and
    verdict caches need it; a figure can be redrawn).
    """
    final = Path(final)
    tmp = final.with_name(f".tmp-{os.getpid()}-{final.name}")
    try:
        write(tmp)
        if fsync:
            with tmp.open("rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    if fsync:
        fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return final


def write_text(final: str | Path, text: str) -> Path:
    """`atomic_write` of UTF-8 text."""
    return atomic_write(final, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_dir(final: str | Path, write: Callable[[Path], object]) -> Path:
    """Call `write(tmp)` on an empty temporary folder beside `final`, then put it in `final`'s place
    (any old folder removed first); a failed write leaves the old folder and no temporary one."""
    final = Path(final)
    tmp = final.with_name(f".tmp-{os.getpid()}-{final.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        write(tmp)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
