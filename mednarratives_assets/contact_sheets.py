"""Grids of small pictures and charts as PNG, for the asset pages of the Dagster UI and the README."""

from __future__ import annotations

import io

import cv2
import numpy as np
from matplotlib.figure import Figure


def contact_sheet_png(images: list[np.ndarray], tile_width: int = 192, columns: int = 4) -> bytes | None:
    """RGB images as one PNG grid, each scaled to `tile_width` with a white frame; None if no images."""
    tiles = []
    for image in images:
        height = max(1, round(image.shape[0] * tile_width / image.shape[1]))
        tile = cv2.resize(image, (tile_width, height), interpolation=cv2.INTER_AREA)
        tiles.append(cv2.copyMakeBorder(tile, 2, 2, 2, 2, cv2.BORDER_CONSTANT, value=(255, 255, 255)))
    if not tiles:
        return None
    tile_h = max(t.shape[0] for t in tiles)
    tiles = [cv2.copyMakeBorder(t, 0, tile_h - t.shape[0], 0, 0, cv2.BORDER_CONSTANT) for t in tiles]
    blank = np.zeros_like(tiles[0])
    tiles += [blank] * (-len(tiles) % columns)
    rows = [np.hstack(tiles[i : i + columns]) for i in range(0, len(tiles), columns)]
    ok, png = cv2.imencode(".png", cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR))
    return png.tobytes() if ok else None


def figure_png(figure: Figure) -> bytes:
    """A matplotlib figure (built without pyplot, so no global backend) as PNG bytes."""
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
