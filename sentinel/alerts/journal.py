"""The alert journal: JSON lines appended and flushed to disk *before* anything is published,
so an alert survives a missing subscriber, a full socket queue or a crash.

Two faults are handled here rather than left to the caller:
- a crash (SIGKILL, power) in the middle of a write leaves a torn last line: on the next start it
  is moved to `<journal>.torn` (appended, with the time it was found) and the journal cut back to
  its last complete line, with a warning, so every reader sees whole JSON lines only;
- a full (or failing) disk: the record is kept in memory (up to `backlog_limit` records, oldest
  dropped first and counted), publishing goes on, one error line a minute is logged, and the
  backlog is written, in order, as soon as a write succeeds again. A write that fails half-way is
  cut back, so a full disk never leaves a torn line either.

Rotation: past `max_bytes` the journal is renamed `<journal>.1` (the older ones move to `.2`, ...,
and the oldest past `keep` is removed) and a new one started. Readers (the MQTT and notification
sinks, the dashboard, `sentinel feedback`) follow across: a cursor holds the inode of the file it
points into and, finding the journal replaced, finishes that file under its rotated name first.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import threading
import time
from collections import deque
from pathlib import Path

from sentinel.files import atomic_write


def _repair(path: Path, log) -> None:
    """Cut a torn tail (the bytes after the last newline) off the journal and keep it beside it."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    if size == 0:
        return
    with open(path, "rb") as f:
        f.seek(max(0, size - 1))
        if f.read(1) == b"\n":  # ends cleanly; a whole last line that is not JSON is left to readers
            return
        # Find the last newline: read backwards in blocks.
        pos, block, cut = size, 1 << 16, 0
        while pos > 0:
            start = max(0, pos - block)
            f.seek(start)
            chunk = f.read(pos - start)
            i = chunk.rfind(b"\n")
            if i >= 0:
                cut = start + i + 1
                break
            pos = start
        f.seek(cut)
        torn = f.read()
    found = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    with open(path.with_name(path.name + ".torn"), "ab") as t:
        t.write(f"# {found} {len(torn)} bytes cut from the end of {path.name}\n".encode() + torn + b"\n")
    os.truncate(path, cut)
    if log is not None:
        log.warning("journal had a torn last line (an earlier crash mid-write); set aside", journal=str(path),
                    bytes=len(torn), moved_to=str(path.with_name(path.name + ".torn")))


def rotated(path: str | Path, keep: int = 64) -> list[Path]:
    """The rotated journals that exist, oldest first (`.N` ... `.1`)."""
    path = Path(path)
    found = [path.with_name(f"{path.name}.{i}") for i in range(keep, 0, -1)]
    return [p for p in found if p.exists()]


def last_lines(path: str | Path, n: int) -> list[bytes]:
    """The last `n` complete lines of the journal, reaching into the newest rotated one (the
    dashboard's alerts of earlier runs, right after a rotation too)."""
    out: list[bytes] = []
    for p in (Path(path), *reversed(rotated(path)[-1:])):
        with contextlib.suppress(OSError), open(p, "rb") as f:
            out = [line for line in f if line.endswith(b"\n")][-(n - len(out)):] + out
        if len(out) >= n:
            break
    return out[-n:]


def lines_newest_file_first(path: str | Path):
    """Every complete line: the journal's, then each rotated one's, newest file first (a search
    for a recent event stops early)."""
    for p in (Path(path), *reversed(rotated(path))):
        with contextlib.suppress(OSError), open(p, "rb") as f:
            yield from (line for line in f if line.endswith(b"\n"))


class Journal:
    def __init__(self, path: str | Path, log=None, backlog_limit: int = 10_000, error_every_s: float = 60.0,
                 max_bytes: int | None = None, keep: int = 4) -> None:
        self.max_bytes, self.keep = max_bytes, keep
        self.rotations = 0
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.log = log
        _repair(self.path, log)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.backlog: deque[bytes] = deque()
        self.backlog_limit = backlog_limit
        self.error_every_s = error_every_s
        self.write_errors = 0
        """Appends that could not reach the disk (each is retried from the backlog)."""
        self.lost = 0
        """Records dropped because the backlog was full: the only way an alert can miss the journal."""
        self._last_error_log = float("-inf")
        self._lock = threading.Lock()  # the inference loop appends; the daemon's loop retries the backlog

    def append(self, record: dict) -> bool:
        """Write the record (after any backlog); False if it is held in memory for now."""
        with self._lock:
            self.backlog.append((json.dumps(record, separators=(",", ":")) + "\n").encode())
            if len(self.backlog) > self.backlog_limit:
                self.backlog.popleft()
                self.lost += 1
            return self._flush()

    def flush(self) -> bool:
        """Write what the backlog holds, oldest first; True once it is empty."""
        with self._lock:
            return self._flush()

    def _flush(self) -> bool:
        if self._fd < 0:
            return not self.backlog
        while self.backlog:
            data = self.backlog[0]
            size = os.fstat(self._fd).st_size
            try:
                written = os.write(self._fd, data)
                if written != len(data):
                    raise OSError(28, "short write (disk full?)")
                os.fsync(self._fd)
            except OSError as e:
                with contextlib.suppress(OSError):  # never leave half a line: cut back to where it began
                    os.ftruncate(self._fd, size)
                self.write_errors += 1
                now = time.monotonic()
                if self.log is not None and now - self._last_error_log >= self.error_every_s:
                    self._last_error_log = now
                    self.log.error("journal write failed; alerts are kept in memory and still published",
                                   journal=str(self.path), error=e.strerror or str(e), held=len(self.backlog),
                                   lost=self.lost)
                return False
            self.backlog.popleft()
            if self.max_bytes is not None and size + len(data) >= self.max_bytes:
                self._rotate()
        return True

    def _rotate(self) -> None:
        """Start a new journal; the full one becomes `.1` (oldest removed past `keep`)."""
        try:
            names = [self.path.with_name(f"{self.path.name}.{i}") for i in range(1, self.keep + 1)]
            names[-1].unlink(missing_ok=True)
            for older, newer in zip(reversed(names[1:]), reversed(names[:-1]), strict=True):
                if newer.exists():
                    os.replace(newer, older)
            os.rename(self.path, names[0])
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as e:  # keep appending to the old one: a big journal beats a lost alert
            if self.log is not None:
                self.log.error("journal rotation failed; appending on", journal=str(self.path), error=str(e))
            return
        os.close(self._fd)
        self._fd = fd
        self.rotations += 1
        if self.log is not None:
            self.log.info("journal rotated", journal=str(self.path), kept=len(rotated(self.path, self.keep)))

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                self._flush()
                os.close(self._fd)
                self._fd = -1

    @staticmethod
    def read(path: str | Path) -> list[dict]:
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]


class JournalCursor:
    """How far into the journal a sink has delivered, in bytes, with whatever else the sink must
    not forget across a restart (`extra`), kept in a small file replaced atomically (a crash
    leaves the old or the new state, never a torn one)."""

    def __init__(self, path: str | Path, journal: str | Path) -> None:
        self.path, self.journal = Path(path), Path(journal)
        self.extra: dict = {}
        self.inode: int | None = None
        """The file `offset` points into (None: the journal as it is now)."""
        self.offset = self._load()

    def _load(self) -> int:
        try:
            state = json.loads(self.path.read_text())
            self.extra = dict(state.get("extra") or {})
            self.inode = state.get("inode")
            return int(state["offset"])
        except FileNotFoundError:
            # First start of this sink: send what is raised from now on, not the journal's whole past.
            if self.journal.exists():
                st = self.journal.stat()
                self.inode = st.st_ino
                return st.st_size
            return 0
        except (ValueError, KeyError, TypeError, OSError):
            return 0  # unreadable: resend everything rather than lose anything

    def save(self, position: int | tuple[int | None, int] | None = None) -> None:
        """Remember a position: an offset in the current file, or (inode, offset) from unsent_lines."""
        if isinstance(position, tuple):
            self.inode, self.offset = position
        elif position is not None:
            self.offset = position
        state = {"journal": str(self.journal), "offset": self.offset, "inode": self.inode, "extra": self.extra}
        atomic_write(self.path, lambda tmp: tmp.write_text(json.dumps(state)))


def _lines_from(path: Path, inode: int, start: int) -> list[tuple[tuple[int, int], bytes]]:
    out, offset = [], start
    with open(path, "rb") as f:
        f.seek(start)
        for line in f.read().splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break
            offset += len(line)
            out.append(((inode, offset), line))
    return out


def unsent_lines(journal: Path, cursor: JournalCursor, log=None) -> list[tuple[tuple[int, int], bytes]]:
    """(position just past it, line) of every complete journal line past the cursor, in order,
    across rotations (the rest of the file the cursor points into, under its rotated name, then
    any newer ones); a line still being written (no newline yet) waits for the next call. A
    journal shorter than the cursor was replaced: it is read from its start."""
    try:
        st = journal.stat()
    except FileNotFoundError:
        return []
    if cursor.inode is not None and cursor.inode != st.st_ino:
        chain = rotated(journal)
        inodes = [p.stat().st_ino for p in chain]
        out: list = []
        if cursor.inode in inodes:
            i = inodes.index(cursor.inode)
            out += _lines_from(chain[i], inodes[i], cursor.offset)
            for p, ino in zip(chain[i + 1:], inodes[i + 1:], strict=True):
                out += _lines_from(p, ino, 0)
        else:
            if log:
                log.warning("a sink's place in the journal was rotated away; sending what is kept",
                            journal=str(journal), cursor=str(cursor.path))
            for p, ino in zip(chain, inodes, strict=True):
                out += _lines_from(p, ino, 0)
        return out + _lines_from(journal, st.st_ino, 0)
    size = st.st_size
    if cursor.inode is None:
        cursor.inode = st.st_ino
    if size < cursor.offset:
        if log:
            log.warning("journal is shorter than a sink's cursor (replaced?); sending it from the start",
                        journal=str(journal), cursor=str(cursor.path))
        cursor.save(0)
    if size == cursor.offset:
        return []
    return _lines_from(journal, st.st_ino, cursor.offset)
