"""Stage settings declared once: each field of a settings dataclass carries its default, its bounds
and a one-line doc, and both the stage's `validated()` and the launchpad config read them from there.

    @dataclass(frozen=True)
    class NarrativeSettings:
        padding_s: float = setting(0.3, "Seconds added to each side of a chunk.", ge=0, le=5, unit="seconds")

        def validated(self) -> NarrativeSettings:
            return check_settings(self, "{name}={value!r} must {rule}")

The type comes from the field's annotation (float, int, bool or str); an int setting takes no bool,
a float setting takes an int but no bool. Plain dataclasses, no Dagster.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
import typing
from collections.abc import Sequence
from typing import Any, TypeVar

# The key under which `setting` files a field's declaration in the dataclass field's metadata.
_DECLARATION = "mednarratives_setting"
_TYPE_WORDS = {int: "be an integer", float: "be a number", bool: "be true or false", str: "be text"}
_KINDS = {int: numbers.Integral, float: numbers.Real, bool: bool, str: str}

Settings = TypeVar("Settings")


def setting(
    default: Any,
    doc: str,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: Sequence[str] | None = None,
    unit: str = "",
) -> Any:
    """A dataclass field with its default, its one-line doc and the values it allows.

    ge/gt/le/lt: inclusive and exclusive bounds; choices: the only values allowed; unit: the word
    after a bound in messages ("between 0 and 32 bits").
    """
    if (ge is not None and gt is not None) or (le is not None and lt is not None):
        raise TypeError("a setting takes one lower bound (ge or gt) and one upper bound (le or lt)")
    # Name and type are filled in from the dataclass field when the class is read.
    declared = Setting("", object, default, doc, ge, gt, le, lt, tuple(choices) if choices else None, unit)
    return dataclasses.field(default=default, metadata={_DECLARATION: declared})


@dataclasses.dataclass(frozen=True)
class Setting:
    """One declared setting: its name, type, default and doc, and the values it allows."""

    name: str
    kind: type  # float, int, bool or str
    default: Any
    doc: str
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[str, ...] | None = None
    unit: str = ""

    @classmethod
    def from_field(cls, name: str, kind: type, field: dataclasses.Field) -> Setting:
        """The setting a `setting(...)` field declares; `kind` is its annotated type."""
        if _DECLARATION not in field.metadata:
            raise TypeError(f"{name} is not declared with setting(default, doc, ...)")
        if kind not in _KINDS:
            raise TypeError(f"{name}: a setting is a float, int, bool or str, not {kind!r}")
        return dataclasses.replace(field.metadata[_DECLARATION], name=name, kind=kind)

    def rule(self) -> str:
        """The whole rule, starting with its verb: "be an integer of at least 1", "lie in [0, 1)"."""
        if self.choices is not None:
            return f"be one of {', '.join(self.choices)}"
        bounds = self._bounds()
        if not bounds:
            return _TYPE_WORDS[self.kind]
        if self.kind is int and not self.unit:  # a unit ("bits") says it counts whole things already
            return f"be an integer {'of ' if bounds.startswith('at ') else ''}{bounds}"
        return f"{'lie' if bounds.startswith('in ') else 'be'} {bounds}"

    def broken(self, value: Any) -> str | None:
        """None where `value` keeps the rule; else the part it breaks, as one would say it alone:
        "be an integer", "be positive", "be zero or more", "be at most 1"."""
        if not isinstance(value, _KINDS[self.kind]) or (self.kind is not bool and isinstance(value, bool)):
            return _TYPE_WORDS[self.kind]
        if self.choices is not None and value not in self.choices:
            return self.rule()
        # Written as "not (value ok)" so that NaN breaks every bound.
        if self.ge is not None and not value >= self.ge:
            return "be zero or more" if self.ge == 0 else f"be at least {self._amount(self.ge)}"
        if self.gt is not None and not value > self.gt:
            return "be positive" if self.gt == 0 else f"be above {self._amount(self.gt)}"
        if self.le is not None and not value <= self.le:
            return f"be at most {self._amount(self.le)}"
        if self.lt is not None and not value < self.lt:
            return f"be below {self._amount(self.lt)}"
        return None

    @property
    def description(self) -> str:
        """The doc, and the rule where there is more to it than the type: for the launchpad."""
        if self.choices is None and not self._bounds():
            return self.doc
        return f"{self.doc.rstrip('.')}. Must {self.rule()}."

    def _bounds(self) -> str:
        """The bounds in words without a verb ("at least 1", "between 0 and 5 seconds"); "" when none."""
        low = self.ge if self.ge is not None else self.gt
        high = self.le if self.le is not None else self.lt
        if low is not None and high is not None:
            if self.ge is not None and self.le is not None:
                return f"between {_number(low)} and {self._amount(high)}"
            opening = "[" if self.ge is not None else "("
            closing = "]" if self.le is not None else ")"
            unit = f" {self.unit}" if self.unit else ""
            return f"in {opening}{_number(low)}, {_number(high)}{closing}{unit}"
        if low is not None:
            return f"{'at least' if self.ge is not None else 'above'} {self._amount(low)}"
        if high is not None:
            return f"{'at most' if self.le is not None else 'below'} {self._amount(high)}"
        return ""

    def _amount(self, bound: float) -> str:
        """A bound with its unit: "32 bits"."""
        return f"{_number(bound)} {self.unit}" if self.unit else _number(bound)


def _number(bound: float) -> str:
    """5 -> "5", 0.0 -> "0", 0.25 -> "0.25": a bound as a person writes it."""
    return str(bound) if isinstance(bound, int) else f"{bound:g}"


@functools.cache
def declared_settings(settings_cls: type) -> tuple[Setting, ...]:
    """The settings a dataclass declares, in field order; a field not declared with `setting` is an error."""
    kinds = typing.get_type_hints(settings_cls)
    return tuple(
        Setting.from_field(field.name, kinds[field.name], field) for field in dataclasses.fields(settings_cls)
    )


def check_settings(settings: Settings, message: str) -> Settings:
    """`settings` itself when every field keeps its declared rule; else a ValueError with one
    `message` per bad field, joined by "; ".

    `message` is a format string over {name}, {value}, {rule} (the whole rule: "lie in [0, 1)")
    and {broken} (the part the value breaks: "be at most 1"), e.g. "{name} must {rule}, got {value!r}".
    """
    problems = []
    for declared in declared_settings(type(settings)):
        value = getattr(settings, declared.name)
        broken = declared.broken(value)
        if broken is not None:
            words = {"name": declared.name, "value": value, "rule": declared.rule(), "broken": broken}
            problems.append(message.format(**words))
    if problems:
        raise ValueError("; ".join(problems))
    return settings
