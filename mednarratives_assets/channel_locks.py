"""Advisory lock files that make processes take turns, across every Dagster instance on the machine.

- One writer per channel and stage: two runs of one channel (the CLI's throwaway instance beside
  `mednarratives ui`, or two deployments sharing a data root) would write the same keyframes and
  rows. A lock file per (stage, channel) under the data root makes the second wait for the first,
  then fail cleanly if the first holds it too long.
- One connection to the DuckDB file at a time (`database_turn`): DuckDB admits one process with
  the file open for writing, so steps take turns for their short reads and writes, while their
  compute runs in parallel.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

# A stage of one channel rarely runs longer; a holder past this is likely stuck.
DEFAULT_WAIT_S = 6 * 3600.0
# How often a waiting writer says it is still waiting.
REPORT_EVERY_S = 60.0


class ChannelBusy(RuntimeError):
    """Another process kept the lock longer than the caller would wait."""


@contextmanager
def channel_lock(
    lock_path: Path,
    holder: str,
    wait_s: float = DEFAULT_WAIT_S,
    log: Callable[[str], None] = lambda _msg: None,
    poll_s: float = 0.5,
    shared: bool = False,
) -> Iterator[None]:
    """Hold the lock file `lock_path` for the block; `holder` (a run and stage) is written into it so
    that a waiting writer can say whom it waits for. `shared`: held beside other shared holders
    (readers), never beside an exclusive one."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        started = time.monotonic()
        reported = None
        while True:
            try:
                fcntl.flock(descriptor, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            waited = time.monotonic() - started
            other = _read_holder(descriptor)
            if waited >= wait_s:
                raise ChannelBusy(
                    f"{lock_path.stem}: still in use by {other} after {waited:.0f} s; "
                    f"let that run finish (or stop it), then run again"
                )
            if reported is None or waited - reported >= REPORT_EVERY_S:
                log(f"{lock_path.stem}: waiting for {other} to finish ({waited:.0f} s so far)")
                reported = waited
            time.sleep(poll_s)
        if not shared:
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, f"{holder} (pid {os.getpid()})".encode(), 0)
        try:
            yield
        finally:
            if not shared:
                os.ftruncate(descriptor, 0)
            fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)


def _read_holder(descriptor: int) -> str:
    return os.pread(descriptor, 512, 0).decode(errors="replace").strip() or "another process"


def database_turn(
    database: Path | str,
    holder: str,
    shared: bool = False,
    log: Callable[[str], None] = lambda _msg: None,
    wait_s: float = DEFAULT_WAIT_S,
) -> contextlib.AbstractContextManager[None]:
    """This process's turn with the DuckDB file `database`, through the lock file beside it: hold it
    exclusively for a read-write connection, `shared` for a read-only one."""
    database = Path(database)
    return channel_lock(database.with_name(f"{database.name}.lock"), holder, wait_s, log, shared=shared)
