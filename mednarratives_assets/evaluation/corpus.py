"""The corpus runner every benchmark uses: a function called on each lecture (or channel) of demo corpora."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import Generic, TypeVar

import duckdb
import polars as pl

from mednarratives_assets.evaluation.ground_truth import corpus_lectures

STAGE = "stage"  # the stopwatch section that speed is measured over, unless told otherwise

Result = TypeVar("Result")


@dataclass(frozen=True)
class Lecture:
    """One demo lecture: the data root it belongs to, its ground truth and its video."""

    corpus: Path
    truth: dict
    video: Path


def lectures_of(corpora: Iterable[Path | str]) -> list[Lecture]:
    """Every lecture of the data roots whose video is present, corpus by corpus, channel by channel."""
    return [
        Lecture(Path(corpus), truth, video)
        for corpus in corpora
        for truth, video in corpus_lectures(Path(corpus))
    ]


def materialized_tables(corpus: Path, tables: Iterable[str]) -> dict[str, pl.DataFrame]:
    """The corpus's materialized tables, read-only, or SystemExit saying to materialize the corpus."""
    database = corpus / "mednarratives.duckdb"
    if not database.is_file():
        raise SystemExit(f"{database} is missing: materialize the corpus first (mednarratives demo)")
    with duckdb.connect(str(database), read_only=True) as con:
        present = {t for (t,) in con.sql("SELECT table_name FROM duckdb_tables()").fetchall()}
        if missing := [t for t in tables if t not in present]:
            raise SystemExit(f"{database} lacks tables {missing}: materialize the corpus first")
        return {t: con.sql(f"FROM {t}").pl() for t in tables}


@dataclass
class Stopwatch:
    """Seconds spent inside `timed` sections, by section; what runs outside them is not counted."""

    seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))

    @contextmanager
    def timed(self, section: str = STAGE) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.seconds[section] += time.perf_counter() - started


@dataclass
class CorpusRun(Generic[Result]):
    """Every lecture a run went over, the function's result for each call, and the timed seconds."""

    lectures: list[Lecture]
    results: list[Result]
    seconds: defaultdict[str, float]

    @property
    def video_s(self) -> float:
        return sum(lecture.truth["duration_s"] for lecture in self.lectures)

    def rate(self, amount: float, section: str = STAGE) -> float:
        """`amount` per second spent in `section`: with seconds of video, a multiple of real time."""
        return amount / max(self.seconds[section], 1e-9)

    @property
    def x_real_time(self) -> float:
        """Seconds of video per second of the stage."""
        return self.rate(self.video_s)


def run_lectures(
    corpora: Iterable[Path | str], per_lecture: Callable[[Lecture, Stopwatch], Result]
) -> CorpusRun[Result]:
    """Call `per_lecture(lecture, stopwatch)` for every lecture of the corpora.

    The function times what it measures with `stopwatch.timed(...)`; preparing its input stays untimed.
    """
    lectures = lectures_of(corpora)
    stopwatch = Stopwatch()
    results = [per_lecture(lecture, stopwatch) for lecture in lectures]
    return CorpusRun(lectures, results, stopwatch.seconds)


def run_channels(
    corpora: Iterable[Path | str], per_channel: Callable[[list[Lecture], Stopwatch], Result]
) -> CorpusRun[Result]:
    """Call `per_channel(lectures, stopwatch)` once per channel of each corpus, with its lectures."""
    lectures, results, stopwatch = [], [], Stopwatch()
    for corpus in corpora:
        # one corpus at a time: a data root given twice is run twice, not merged
        for _, channel in groupby(lectures_of([corpus]), key=lambda lecture: lecture.truth["channel"]):
            channel_lectures = list(channel)
            lectures += channel_lectures
            results.append(per_channel(channel_lectures, stopwatch))
    return CorpusRun(lectures, results, stopwatch.seconds)
