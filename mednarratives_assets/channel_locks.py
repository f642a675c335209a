"""One writer per channel and stage, across every process and Dagster instance on the machine.

Dagster's `duckdb` pool serializes steps within one instance only; the CLI's throwaway instance
beside `mednarratives ui`, or two deployments sharing a data root, can run the same stage of the same
channel at once. An advisory lock file per (stage, channel) under the data root makes the second
writer wait for the first, then fail cleanly if the first holds it too long.
"""

from __future__ import annotations

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
) -> Iterator[None]:
    """Hold the lock file `lock_path` for the block; `holder` (a run and stage) is written into it so
    that a waiting writer can say whom it waits for."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        started = time.monotonic()
        reported = None
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
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
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{holder} (pid {os.getpid()})".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(descriptor, 0)
            fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)


def _read_holder(descriptor: int) -> str:
    return os.pread(descriptor, 512, 0).decode(errors="replace").strip() or "another process"
