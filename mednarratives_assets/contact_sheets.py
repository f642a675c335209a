"""Grids of small pictures, for the asset pages of the Dagster UI and the README."""

from __future__ import annotations

import cv2
import numpy as np


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
