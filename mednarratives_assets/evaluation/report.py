"""How every benchmark reports: figures against their targets (PASS or FAIL), peak memory, markdown tables."""

from __future__ import annotations

import operator
import resource
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

RELATIONS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}


@dataclass(frozen=True)
class Check:
    """A figure against its target. relation: how the value must compare with the target to pass
    (">=" when higher is better, "<" or "<=" when lower is); show: how both are printed."""

    name: str
    value: float
    target: float
    show: Callable[[float], str] = "{:.3f}".format
    relation: str = ">="

    def __post_init__(self) -> None:
        if self.relation not in RELATIONS:
            raise ValueError(
                f"check {self.name!r}: relation {self.relation!r} is not one of {list(RELATIONS)}"
            )

    @property
    def passed(self) -> bool:
        return RELATIONS[self.relation](self.value, self.target)

    @property
    def verdict(self) -> str:
        return "PASS" if self.passed else "FAIL"

    @property
    def requirement(self) -> str:
        """The target as printed, e.g. ">= 0.950"."""
        return f"{self.relation} {self.show(self.target)}"

    def line(self, name_width: int, value_width: int) -> str:
        """`name  value   target >= X   PASS`, in columns of the given widths."""
        return (
            f"{self.name:{name_width}s} {self.show(self.value):>{value_width}s}   "
            f"target {self.requirement}   {self.verdict}"
        )


def print_checks(checks: Iterable[Check], *, name_width: int, value_width: int) -> None:
    for check in checks:
        print(check.line(name_width, value_width))


def peak_rss_mb(children: bool = False) -> float:
    """The largest resident set so far in MB: this process's, or with `children` its largest
    finished child's (Linux counts ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF).ru_maxrss / 1024


def markdown_table(frame: pl.DataFrame, float_precision: int = 3) -> str:
    """A frame as a markdown table, every row and column of it, without dtypes or shape."""
    import polars as pl  # here, not at the top: importing it would add to every script's peak RSS

    with pl.Config(
        tbl_rows=-1,
        tbl_cols=-1,
        tbl_width_chars=250,
        fmt_str_lengths=40,
        float_precision=float_precision,
        tbl_formatting="ASCII_MARKDOWN",
        tbl_hide_column_data_types=True,
        tbl_hide_dataframe_shape=True,
    ):
        return str(frame)
