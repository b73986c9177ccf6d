"""Writing files so that a crash or a full disk leaves the old file or the new one, never a torn one."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> None:
    """`write(tmp)` beside `path`, then rename it over `path`. The temporary name keeps the
    suffix (soundfile picks the format from it); on failure it is removed and the error raised."""
    path = Path(path)
    tmp = path.with_name(f"{path.stem}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
