"""Client-side names of a job's images: ``app.elf``, ``app.bin@0x0800A000``, and
``boot.elf+app.elf`` for several images in ONE job.

Why ``+`` (and not a ``--together`` flag): ``hwut submit a.elf b.elf`` already means
two jobs run in parallel (issue 16), and a job is one argument, so both mix on one
command line: ``hwut submit boot.elf+app1.elf boot.elf+app2.elf`` is two jobs of two
images each, which a flag for the whole command could not say. A path that exists as
it is written is one file even if its name holds ``+`` or ``@`` (``c++.elf``).

``@ADDRESS`` places a BIN image (``app.bin@0x0800A000``); a BIN without one goes at the
start of the board's flash; an ELF or HEX places itself (the server refuses an address
for one). Nothing here reads a file's content: the server checks the images.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

#: Images one job may carry (the server's ``max_images`` says the same).
MAX_IMAGES = 8


@dataclass(frozen=True)
class ImageRef:
    """One image file of a job and, for a BIN, where it goes."""

    path: Path
    address: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))  # a str is taken too

    def __str__(self) -> str:
        return str(self.path) + ("" if self.address is None else f"@0x{self.address:08X}")


#: One job's images, in the order they are programmed.
JobImages = tuple[ImageRef, ...]


def parse_address(text: str) -> int:
    """``0x0800A000`` (or decimal) as an address; ValueError saying what is allowed."""
    try:
        value = int(text.strip(), 0)
    except ValueError:
        raise ValueError(f"not an address: {text[:40]!r} (give e.g. 0x0800A000)") from None
    if not 0 <= value < 1 << 32:
        raise ValueError(f"address {text[:40]!r} is outside the 32-bit address space")
    return value


def parse_ref(text: str, base: Path | None = None,
              exists: Callable[[Path], bool] = Path.is_file) -> ImageRef:
    """``app.elf`` or ``app.bin@0x0800A000`` (relative to ``base`` when given)."""
    path = (base / text) if base is not None else Path(text)
    if exists(path) or "@" not in text:
        return ImageRef(path)
    name, _, address = text.rpartition("@")
    where = (base / name) if base is not None else Path(name)
    return ImageRef(where, parse_address(address))


def parse_job(text: str, base: Path | None = None,
              exists: Callable[[Path], bool] = Path.is_file) -> JobImages:
    """One job's images from one argument: ``boot.elf+app.bin@0x0800A000``. ValueError
    for an empty part, a bad address or more than MAX_IMAGES images."""
    whole = (base / text) if base is not None else Path(text)
    if exists(whole):
        return (ImageRef(whole),)
    parts = text.split("+")
    if any(not p for p in parts):
        raise ValueError(f"{text!r}: an empty image name (join images with '+', e.g. "
                         "boot.elf+app.elf)")
    if len(parts) > MAX_IMAGES:
        raise ValueError(f"{text!r}: at most {MAX_IMAGES} images in one job")
    return tuple(parse_ref(p, base, exists) for p in parts)


def missing(images: JobImages) -> list[str]:
    """The files of ``images`` that do not exist (for a usage error before any upload)."""
    return [str(i.path) for i in images if not i.path.is_file()]
