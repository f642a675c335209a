"""Perceptual hashes: the same picture, re-encoded or re-scaled, hashes within a few bits."""

from __future__ import annotations

import cv2
import imagehash
import numpy as np
from PIL import Image


def perceptual_hash(keyframe_bgr: np.ndarray) -> str:
    """64-bit DCT pHash as 16 hex digits."""
    return str(imagehash.phash(Image.fromarray(cv2.cvtColor(keyframe_bgr, cv2.COLOR_BGR2RGB))))


def hash_distance(a: str, b: str) -> int:
    return imagehash.hex_to_hash(a) - imagehash.hex_to_hash(b)
