"""A disk that really fills: a small tmpfs (the tests run as root in CI), and helpers to
fill it and free a little of it again."""
from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def tiny_disk_at(mount_point: Path, size: str = "1m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``mount_point`` while the generator runs."""
    mount_point.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)],
                       check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a tmpfs to fill (needs root / CAP_SYS_ADMIN): {exc}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False, timeout=30)


def fill(disk: Path) -> Path:
    """Fill ``disk`` to the last byte with a new file, returned to be shrunk later."""
    filler = disk / f"filler{len(list(disk.glob('filler*')))}"
    with open(filler, "xb", buffering=0) as fh:
        chunk = b"\0" * 65536
        while chunk:
            try:
                fh.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                chunk = chunk[: len(chunk) // 2]
    return filler


def free_pages(filler: Path, pages: int) -> None:
    os.truncate(filler, max(0, filler.stat().st_size - pages * 4096))


