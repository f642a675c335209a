"""Pairs a tiny CLIP model can learn in seconds: a bright circle or square, somewhere on a grey (CT)
or pink (histopathology) picture, described in words, with a box and phrase on the shape."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import imagehash
import numpy as np
import polars as pl
from PIL import Image

SIDE = 96


def synthetic_pairs(
    data_root: Path, n: int = 48, channel: str = "ch", lecture_size: int = 4, seed: int = 0
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(aligned_pairs rows, boxes rows) with their pictures under data_root/pairs/<channel>/."""
    rng = np.random.default_rng(seed)
    (data_root / "pairs" / channel).mkdir(parents=True, exist_ok=True)
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
        pair_id = hashlib.sha1(f"{channel}/{index}".encode()).hexdigest()[:16]
        relative = f"pairs/{channel}/{pair_id}.png"
        Image.fromarray(picture).save(data_root / relative)
        modality = "a CT scan" if domain == "CT" else "a histology slide"
        video_id = f"lecture-{index // lecture_size}"
        pairs.append(
            {
                "channel": channel,
                "pair_id": pair_id,
                "video_id": video_id,
                "chunk_index": index,
                "image_path": relative,
                "image_sha256": hashlib.sha256((data_root / relative).read_bytes()).hexdigest(),
                "phash": str(imagehash.phash(Image.fromarray(picture))),
                "corrected_caption": f"Here is {modality} with a bright {shape}.",
                "medical_text": f"Here is {modality} with a bright {shape}." if domain == "CT" else "",
                "domain": domain,
            }
        )
        side = (radius + 2) / SIDE
        boxes.append(
            {
                "channel": channel,
                "video_id": video_id,
                "chunk_index": index,
                "box_index": 0,
                "x1_norm": cx / SIDE - side,
                "y1_norm": cy / SIDE - side,
                "x2_norm": cx / SIDE + side,
                "y2_norm": cy / SIDE + side,
                "phrase": f"this bright {shape} here",
            }
        )
    return pl.DataFrame(pairs), pl.DataFrame(boxes)
