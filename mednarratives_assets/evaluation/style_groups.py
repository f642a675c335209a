"""Figures by style: reserved styles beside training styles, then factor by factor.

A lecture's ground truth names its style's factors (`synthetic/styles.py: LectureStyle.factors`);
lectures of the demo's fixed looks count as split "demo". A benchmark keeps one score object per
group (any object with an `add` method, such as `stage_scores.ChunkScore`) and adds each
lecture's result to the groups it belongs to.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

Score = TypeVar("Score")

SPLIT_ORDER = ("training", "reserved", "demo")
FACTORS = (
    "accent",
    "voice_variant",
    "speaking_rate",
    "room_noise",
    "cursor_family",
    "cursor_shape",
    "cursor_size",
    "pointer_behaviour",
    "slide_design",
    "slide_tone",
    "text_position",
    "frame_size",
    "fps",
    "webcam",
    "narration",
)


def lecture_factors(truth: dict) -> dict[str, str]:
    style = truth.get("style")
    return style["factors"] if style else {"split": "demo"}


class StyleGroups(Generic[Score]):
    """One score for all lectures, one per split, and one per (factor, value)."""

    def __init__(self, new_score: Callable[[], Score]):
        self.new_score = new_score
        self.overall = new_score()
        self.splits: dict[str, Score] = {}
        self.factors: dict[tuple[str, str], Score] = {}
        self.lectures: dict[tuple[str, str], int] = {}

    def add(self, truth: dict, *result) -> None:
        """`score.add(*result)` for every group the lecture of `truth` belongs to."""
        factors = lecture_factors(truth)
        targets = [self.overall, self.splits.setdefault(factors["split"], self.new_score())]
        for factor in FACTORS:
            if factor in factors:
                key = (factor, factors[factor])
                targets.append(self.factors.setdefault(key, self.new_score()))
                self.lectures[key] = self.lectures.get(key, 0) + 1
        for score in targets:
            score.add(*result)

    def split_scores(self) -> list[tuple[str, Score]]:
        """(split, score), training before reserved."""
        return sorted(self.splits.items(), key=lambda item: SPLIT_ORDER.index(item[0]))

    def print_factor_table(
        self, columns: dict[str, Callable[[Score], float | int | str]], title: str = ""
    ) -> None:
        print(f"\n-- by style factor{f' ({title})' if title else ''}")
        print(self.factor_table(columns))

    def factor_table(self, columns: dict[str, Callable[[Score], float | int | str]]) -> str:
        """A markdown table: one row per factor value, the split of lectures it came from, and `columns`."""
        header = ["factor", "value", "lectures", *columns]
        rows = [header, ["---"] * len(header)]
        for (factor, value), score in sorted(self.factors.items()):
            cells = [factor, value, str(self.lectures[(factor, value)])]
            cells += [_cell(column(score)) for column in columns.values()]
            rows.append(cells)
        return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def _cell(value: float | int | str) -> str:
    if isinstance(value, float):
        return "n/a" if value != value else f"{value:.3f}"
    return str(value)


def print_by_split(groups: StyleGroups[Score], print_split: Callable[[str, Score], None]) -> None:
    """Each split's figures under a heading, training styles before reserved ones."""
    for split, score in groups.split_scores():
        print(f"\n-- {split} styles")
        print_split(split, score)
