"""Grids of small pictures and charts as PNG, for the asset pages of the Dagster UI and the README,
and text shortened to fit them (at a word boundary, with an ellipsis)."""

from __future__ import annotations

import io
import math

import cv2
import numpy as np
from matplotlib.figure import Figure

ELLIPSIS = "…"
WHITE = (255, 255, 255)


def shorten(text: str, max_chars: int, ellipsis: str = ELLIPSIS) -> str:
    """`text` in at most `max_chars` characters: whole if it fits, else cut at the last word
    boundary that leaves room for `ellipsis` (mid-word only for a single word longer than that)."""
    text = " ".join(text.split())
    if len(text) <= max_chars:
        return text
    room = max(0, max_chars - len(ellipsis))
    cut = text[: room + 1].rsplit(" ", 1)[0] if " " in text[: room + 1] else text[:room]
    return cut[:room].rstrip(" ,;:.-") + ellipsis


def fit_to_width(text: str, width_px: int, font_scale: float, font: int = cv2.FONT_HERSHEY_SIMPLEX) -> str:
    """The longest `shorten(text, n, "...")` that cv2.putText draws within `width_px` (Hershey
    fonts have no "…" glyph, hence three dots)."""
    text = " ".join(text.split())
    for n in range(len(text), -1, -1):
        candidate = shorten(text, n, "...")
        if cv2.getTextSize(candidate, font, font_scale, 1)[0][0] <= width_px:
            return candidate
    return ""


def grid_columns(n_items: int, max_columns: int) -> int:
    """Columns of a grid of `n_items`: no more than the items, and rows as full as they can be
    (5 items in at most 4 columns: 3 + 2, not 4 + 1)."""
    if n_items <= 0:
        return 0
    rows = math.ceil(n_items / max_columns)
    return math.ceil(n_items / rows)


def contact_sheet_png(images: list[np.ndarray], tile_width: int = 192, columns: int = 4) -> bytes | None:
    """RGB images as one PNG grid, each scaled to `tile_width` with a white frame; None if no images.

    The grid is sized to the images (`grid_columns`): no empty tile. A last row with fewer images
    is centred on white, and a tile shorter than its row is padded with white."""
    tiles = []
    for image in images:
        height = max(1, round(image.shape[0] * tile_width / image.shape[1]))
        tile = cv2.resize(image, (tile_width, height), interpolation=cv2.INTER_AREA)
        tiles.append(cv2.copyMakeBorder(tile, 2, 2, 2, 2, cv2.BORDER_CONSTANT, value=WHITE))
    if not tiles:
        return None
    columns = grid_columns(len(tiles), columns)
    tile_h = max(t.shape[0] for t in tiles)
    tiles = [
        cv2.copyMakeBorder(t, 0, tile_h - t.shape[0], 0, 0, cv2.BORDER_CONSTANT, value=WHITE) for t in tiles
    ]
    width = columns * tiles[0].shape[1]
    rows = []
    for i in range(0, len(tiles), columns):
        row = np.hstack(tiles[i : i + columns])
        left = (width - row.shape[1]) // 2
        rows.append(
            cv2.copyMakeBorder(row, 0, 0, left, width - row.shape[1] - left, cv2.BORDER_CONSTANT, value=WHITE)
        )
    ok, png = cv2.imencode(".png", cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR))
    return png.tobytes() if ok else None


def figure_png(figure: Figure) -> bytes:
    """A matplotlib figure (built without pyplot, so no global backend) as PNG bytes."""
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
