"""Pairs a tiny CLIP model can learn in seconds: a bright circle or square, somewhere on a grey (CT)
or pink (histopathology) picture, described in words, with a box and phrase on the shape."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import polars as pl

from mednarratives_assets.demo.narrated_pairs import box_row, pair_row

SIDE = 96


def synthetic_pairs(
    data_root: Path, n: int = 48, channel: str = "ch", lecture_size: int = 4, seed: int = 0
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(aligned_pairs rows, boxes rows) with their pictures under data_root/pairs/<channel>/."""
    rng = np.random.default_rng(seed)
    pairs, boxes = [], []
    for index in range(n):
        shape = ("circle", "square")[index % 2]
        domain = ("CT", "histopathology")[(index // 2) % 2]
        background = (60, 60, 60) if domain == "CT" else (170, 90, 150)
        picture = np.empty((SIDE, SIDE, 3), np.uint8)
        picture[:] = background
        # A smooth random shading makes every picture's pHash its own, as real images' are.
        shading = cv2.resize(rng.uniform(0.5, 1.3, (4, 4)), (SIDE, SIDE), interpolation=cv2.INTER_CUBIC)
        picture = picture * shading[..., None] + rng.normal(0, 12, picture.shape)
        picture = picture.clip(0, 255).astype(np.uint8)
        radius = int(rng.integers(10, 16))
        cx, cy = (int(v) for v in rng.integers(radius + 2, SIDE - radius - 2, 2))
        if shape == "circle":
            cv2.circle(picture, (cx, cy), radius, (250, 250, 250), -1)
        else:
            cv2.rectangle(
                picture, (cx - radius, cy - radius), (cx + radius, cy + radius), (250, 250, 250), -1
            )
        modality = "a CT scan" if domain == "CT" else "a histology slide"
        caption = f"Here is {modality} with a bright {shape}."
        video_id = f"lecture-{index // lecture_size}"
        pairs.append(
            pair_row(
                data_root,
                channel,
                str(index),
                video_id,
                index,
                picture,
                corrected_caption=caption,
                medical_text=caption if domain == "CT" else "",
                roi_text=f"this bright {shape} here",
                domain=domain,
            )
        )
        side = (radius + 2) / SIDE
        box = (cx / SIDE - side, cy / SIDE - side, cx / SIDE + side, cy / SIDE + side)
        boxes.append(box_row(channel, video_id, index, 0, box, f"this bright {shape} here"))
    return pl.DataFrame(pairs), pl.DataFrame(boxes)
