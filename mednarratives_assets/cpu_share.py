"""The threads a step computes with: the machine's cores shared among the steps computing at once.

Torch, CTranslate2 and OpenCV each start a thread per core. Two runs at once on two cores then
keep four busy threads taking turns on two cores, and spend more CPU time on the same work than
two runs with one thread each (docs/benchmarks.md, "End to end"). So each channel step takes a
seat while it computes: a lock file under the machine's temporary folder, held with flock and
released by the kernel when its process dies, so a crashed run never keeps a seat. A step computes
with the cores divided by the seats taken when it starts.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Seats are per machine: runs on other hosts share no cores with this one.
SEATS_DIR = Path(tempfile.gettempdir()) / "mednarratives-computing"

_threads: int | None = None


def share_of_cores(steps_at_once: int, cores: int | None = None) -> int:
    """Threads for one of `steps_at_once` steps on a machine of `cores` (default: this one's)."""
    cores = cores or os.cpu_count() or 1
    return max(1, cores // max(1, steps_at_once))


def seats_taken(folder: Path = SEATS_DIR) -> int:
    """How many seat files are held now; a file nobody holds (its process died) is removed."""
    taken = 0
    for seat in folder.glob("*.seat"):
        try:
            with seat.open("rb") as handle:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            seat.unlink(missing_ok=True)
        except BlockingIOError:
            taken += 1
        except FileNotFoundError:
            pass
    return taken


@contextmanager
def computing_seat(folder: Path = SEATS_DIR) -> Iterator[int]:
    """Hold a seat while the block runs; gives the threads to compute with (see `share_of_cores`),
    which torch and OpenCV are set to use (`use_threads`)."""
    folder.mkdir(parents=True, exist_ok=True)
    seat = folder / f"{os.getpid()}-{threading.get_ident()}.seat"
    with seat.open("wb") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            threads = share_of_cores(seats_taken(folder))
            use_threads(threads)
            yield threads
        finally:
            seat.unlink(missing_ok=True)


def use_threads(threads: int) -> None:
    """Make torch's and OpenCV's thread pools this size, and the ASR engine's when it is built."""
    global _threads
    import cv2
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    _threads = threads


def threads_in_use() -> int:
    """The threads set by the last `use_threads` in this process, else one per core."""
    return _threads or os.cpu_count() or 1
