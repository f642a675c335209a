"""Small helpers that turn stage outputs into metadata the Dagster UI shows.

Numbers are rounded here, in one place, to what they mean: times in seconds to 0.01 s (a video
frame is 0.03 s), other floats to 3 decimals (scores, ratios). Tables keep to a width the asset
page shows without scrolling: at most `MAX_COLUMNS` columns, and long text cut at a word boundary
with an ellipsis.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping

import dagster as dg
import polars as pl

from mednarratives_assets.contact_sheets import shorten

FLOAT_DIGITS = 3  # decimals of a float column unless its name says otherwise
SECONDS_DIGITS = 2  # columns in seconds (`*_s`): 0.01 s
MAX_COLUMNS = 8
MAX_CELL_CHARS = 60


def column_digits(name: str) -> int:
    """Decimals a float column shows by default: seconds to 0.01 s, anything else to 0.001."""
    return SECONDS_DIGITS if name.endswith("_s") or name.endswith("_seconds") else FLOAT_DIGITS


def rounded(value: float, digits: int = FLOAT_DIGITS) -> float:
    """`value` to `digits` decimals; a nonzero value that would round to 0 keeps 2 significant
    digits instead (0.00004 stays 4e-05, not 0.0). A float32 widened to float64 (0.006000000052)
    comes back as the number it meant (0.006)."""
    if not math.isfinite(value) or value == 0:
        return value
    if abs(value) < 0.5 * 10**-digits:
        return float(f"{value:.2g}")
    return round(value, digits)


def format_cell(value: object, digits: int, max_chars: int) -> str:
    """One table cell as markdown text: floats rounded, long text shortened, pipes escaped."""
    if value is None:
        return ""
    if isinstance(value, float):
        text = repr(rounded(value, digits)) if math.isfinite(value) else str(value)
    elif isinstance(value, bool | int):
        text = str(value)
    else:
        text = shorten(str(value), max_chars)
    return text.replace("\n", " ").replace("|", "\\|")


def markdown_preview(
    frame: pl.DataFrame,
    columns: list[str],
    max_rows: int = 20,
    digits: Mapping[str, int] | None = None,
    max_columns: int = MAX_COLUMNS,
    max_chars: int | Mapping[str, int] = MAX_CELL_CHARS,
) -> dg.MetadataValue:
    """The first rows of `frame` as a markdown table for the asset's materialization page.

    Floats are rounded per column (`column_digits`, or `digits[column]`); text longer than
    `max_chars` (a number, or one per column) is cut at a word boundary with an ellipsis; columns
    past `max_columns` are left out and named under the table."""
    shown_columns, hidden = columns[:max_columns], columns[max_columns:]
    shown = frame.select(shown_columns).head(max_rows)
    if shown.is_empty():
        return dg.MetadataValue.md("_no rows_")
    places = [(digits or {}).get(name, column_digits(name)) for name in shown_columns]
    widths = [
        max_chars.get(name, MAX_CELL_CHARS) if isinstance(max_chars, Mapping) else max_chars
        for name in shown_columns
    ]
    header = "| " + " | ".join(shown_columns) + " |\n|" + "---|" * len(shown_columns) + "\n"
    body = "".join(
        "| " + " | ".join(format_cell(v, d, w) for v, d, w in zip(row, places, widths, strict=True)) + " |\n"
        for row in shown.iter_rows()
    )
    more = f"\n_{frame.height - max_rows} more rows_" if frame.height > max_rows else ""
    if hidden:  # names in code spans: an underscore in them would end the italics
        more += f"\n_{len(hidden)} more columns:_ " + ", ".join(f"`{name}`" for name in hidden)
    return dg.MetadataValue.md(header + body + more)


def rounded_metadata(values: Mapping[str, object], digits: int = FLOAT_DIGITS) -> dict[str, object]:
    """`values` with every float (also inside dicts and lists) rounded as in the tables."""

    def walk(value: object) -> object:
        if isinstance(value, dg.MetadataValue):  # a path, a table, markdown: as given
            return value
        if isinstance(value, float):
            return rounded(value, digits)
        if isinstance(value, Mapping):
            return {key: walk(inner) for key, inner in value.items()}
        if type(value) in (list, tuple):
            return [walk(inner) for inner in value]
        return value

    return {key: walk(value) for key, value in values.items()}


def png_image(png: bytes | None, caption: str) -> dg.MetadataValue:
    """An inline PNG the UI renders (Dagster has no image metadata type)."""
    if png is None:
        return dg.MetadataValue.md("_no image_")
    return dg.MetadataValue.md(f"![{caption}](data:image/png;base64,{base64.b64encode(png).decode()})")
