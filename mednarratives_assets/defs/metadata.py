"""Small helpers that turn stage outputs into metadata the Dagster UI shows."""

from __future__ import annotations

import base64

import dagster as dg
import polars as pl


def markdown_preview(frame: pl.DataFrame, columns: list[str], max_rows: int = 20) -> dg.MetadataValue:
    """The first rows of `frame` as a markdown table for the asset's materialization page."""
    shown = frame.select(columns).head(max_rows)
    if shown.is_empty():
        return dg.MetadataValue.md("_no rows_")
    header = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    body = "".join(
        "| " + " | ".join("" if v is None else str(v).replace("|", "\\|") for v in row) + " |\n"
        for row in shown.iter_rows()
    )
    more = f"\n_{frame.height - max_rows} more rows_" if frame.height > max_rows else ""
    return dg.MetadataValue.md(header + body + more)


def png_image(png: bytes | None, caption: str) -> dg.MetadataValue:
    """An inline PNG the UI renders (Dagster has no image metadata type)."""
    if png is None:
        return dg.MetadataValue.md("_no image_")
    return dg.MetadataValue.md(f"![{caption}](data:image/png;base64,{base64.b64encode(png).decode()})")
