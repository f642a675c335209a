"""Aligned pairs as a flawless pipeline run would give them, without rendering any video.

Each image becomes one pair: what the demo lecturer says over it (`lecture.case_narration`) as
the text, and a box with its sentence for each region pointed at. Rows follow the schemas of
`aligned_pairs` and `boxes`, so GenMedCLIP trains on them as on materialized tables. Used to
measure the training recipe at a scale that rendering lectures on 2 cores cannot reach.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import imagehash
import numpy as np
import polars as pl
from PIL import Image

from mednarratives_assets.demo.lecture import case_intro, case_narration
from mednarratives_assets.synthetic.medical_images import MedicalImage

LECTURE_SIZE = 6  # images a lecture: the unit the held-out split draws


def pair_row(
    data_root: Path, channel: str, key: str, video_id: str, chunk_index: int, picture: np.ndarray, **texts
) -> dict:
    """Save `picture` (RGB) as a pair image and return its aligned_pairs row; `texts` fill
    corrected_caption, medical_text, roi_text and domain. The pair id comes from channel and `key`."""
    pair_id = hashlib.sha1(f"{channel}/{key}".encode()).hexdigest()[:16]
    relative = f"pairs/{channel}/{pair_id}.png"
    (data_root / relative).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(picture).save(data_root / relative)
    return {
        "channel": channel,
        "pair_id": pair_id,
        "video_id": video_id,
        "chunk_index": chunk_index,
        "image_path": relative,
        "image_sha256": hashlib.sha256((data_root / relative).read_bytes()).hexdigest(),
        "phash": str(imagehash.phash(Image.fromarray(picture))),
        **texts,
    }


def box_row(channel: str, video_id: str, chunk_index: int, box_index: int, box, phrase: str) -> dict:
    """A boxes row: `box` is x1, y1, x2, y2 as fractions of the pair image."""
    corners = dict(zip(("x1_norm", "y1_norm", "x2_norm", "y2_norm"), box, strict=True))
    chunk = {"channel": channel, "video_id": video_id, "chunk_index": chunk_index, "box_index": box_index}
    return chunk | corners | {"phrase": phrase}


def narrated_pairs(
    images: list[MedicalImage], data_root: Path, channel: str, seed: int, max_side: int = 256
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(aligned_pairs rows, boxes rows) for `images`; pictures go to data_root/pairs/<channel>/."""
    rng = np.random.default_rng(seed)
    pairs, boxes = [], []
    for index, image in enumerate(images):
        picture = image.load()
        scale = max_side / max(picture.shape[:2])
        if scale < 1:
            size = (round(picture.shape[1] * scale), round(picture.shape[0] * scale))
            picture = np.asarray(Image.fromarray(picture).resize(size, Image.Resampling.LANCZOS))
        sentences = case_narration(image, picture, case_intro(image, rng), rng)
        text = " ".join(sentence for sentence, _, _ in sentences)
        regions = [(sentence, roi) for sentence, roi, _ in sentences if roi is not None]
        video_id = f"lecture-{index // LECTURE_SIZE:04d}"
        pairs.append(
            pair_row(
                data_root,
                channel,
                image.image_id,
                video_id,
                index,
                picture,
                corrected_caption=text,
                medical_text=text,
                roi_text=" ".join(sentence for sentence, _ in regions),
                domain=image.modality,
            )
        )
        boxes += [
            box_row(channel, video_id, index, box_index, roi.box, sentence)
            for box_index, (sentence, roi) in enumerate(regions)
        ]
    return pl.DataFrame(pairs), pl.DataFrame(boxes)
