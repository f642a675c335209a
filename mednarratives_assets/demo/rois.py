"""Regions a lecturer would point at in a medical image, and how they would name them.

Regions are local-contrast peaks inside the imaged anatomy (not the black surround), boxed by
the contrast blob around each peak and kept apart from one another.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

_ANALYSIS_SIDE = 160
_MIN_SIDE, _MAX_SIDE = 0.12, 0.32  # box sides as a fraction of the image's sides

_CONTRAST_WORDS = {  # modality -> (brighter than its surround, darker than its surround)
    "CT": ("hyperdense", "hypodense"),
    "MRI": ("hyperintense", "hypointense"),
    "X-ray": ("radiopaque", "lucent"),
    "ultrasound": ("echogenic", "hypoechoic"),
    "histopathology": ("pale", "densely stained"),
    "ophthalmology": ("bright", "dark"),
    "nuclear medicine": ("hot", "cold"),
}
_NOUNS = ("area", "focus", "region", "structure")


@dataclass(frozen=True)
class PictureRoi:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 as fractions of the picture
    brighter: bool
    phrase: str  # the noun phrase the lecturer says, e.g. "this hypodense rounded focus"
    position: str  # e.g. "in the upper left"


def position_words(cx: float, cy: float) -> str:
    vertical = "upper" if cy < 0.38 else "lower" if cy > 0.62 else ""
    horizontal = "left" if cx < 0.38 else "right" if cx > 0.62 else ""
    if vertical and horizontal:
        return f"in the {vertical} {horizontal}"
    if vertical:
        return f"in the {vertical} part"
    if horizontal:
        return f"on the {horizontal} side"
    return "near the center"


def find_rois(picture: np.ndarray, modality: str, count: int, rng: np.random.Generator) -> list[PictureRoi]:
    gray = cv2.cvtColor(picture, cv2.COLOR_RGB2GRAY) if picture.ndim == 3 else picture
    h, w = gray.shape
    scale = _ANALYSIS_SIDE / max(h, w)
    small = cv2.resize(
        gray, (max(8, round(w * scale)), max(8, round(h * scale))), interpolation=cv2.INTER_AREA
    )
    small = small.astype(np.float32) / 255.0
    sh, sw = small.shape
    fine = cv2.GaussianBlur(small, (0, 0), 2.0)
    coarse = cv2.GaussianBlur(small, (0, 0), 9.0)
    contrast = fine - coarse
    saliency = np.abs(contrast)
    tissue = cv2.GaussianBlur(small, (0, 0), 4.0) > 0.06
    margin = max(2, round(0.12 * min(sh, sw)))
    tissue[:margin], tissue[-margin:], tissue[:, :margin], tissue[:, -margin:] = False, False, False, False
    # Lecturers point at anatomy, which sits towards the middle; corners hold burned-in labels.
    yy, xx = np.mgrid[0:sh, 0:sw]
    centre_prior = np.exp(-(((xx / sw - 0.5) ** 2 + (yy / sh - 0.5) ** 2) / (2 * 0.3**2)))
    saliency = np.where(tissue, saliency * centre_prior, 0)
    if saliency.max() <= 1e-3:  # a flat image: fall back to the centre
        saliency = np.zeros_like(small)
        saliency[sh // 2, sw // 2] = 1.0

    contrast_words = _CONTRAST_WORDS.get(modality, ("bright", "dark"))
    rois: list[PictureRoi] = []
    for _ in range(count):
        flat = saliency.ravel()
        if flat.max() <= 0:
            break
        candidates = np.argsort(flat)[::-1][:12]
        peak = int(rng.choice(candidates[flat[candidates] >= 0.6 * flat.max()]))
        py, px = divmod(peak, sw)
        blob = (saliency >= 0.5 * saliency[py, px]).astype(np.uint8)
        _, labels = cv2.connectedComponents(blob)
        ys, xs = np.nonzero(labels == labels[py, px])
        half_w = np.clip(max(px - xs.min(), xs.max() - px) + 2, _MIN_SIDE * sw / 2, _MAX_SIDE * sw / 2)
        half_h = np.clip(max(py - ys.min(), ys.max() - py) + 2, _MIN_SIDE * sh / 2, _MAX_SIDE * sh / 2)
        brighter = bool(contrast[py, px] > 0)
        cx = np.clip(px, half_w + margin / 2, sw - half_w - margin / 2)  # keep the box off the border
        cy = np.clip(py, half_h + margin / 2, sh - half_h - margin / 2)
        x1, x2 = cx - half_w, cx + half_w
        y1, y2 = cy - half_h, cy + half_h
        box = (float(x1 / sw), float(y1 / sh), float(x2 / sw), float(y2 / sh))
        shape = (
            "elongated"
            if max(x2 - x1, y2 - y1) > 1.6 * min(x2 - x1, y2 - y1)
            else str(rng.choice(["rounded", "irregular", "small"]))
        )
        noun = str(rng.choice(_NOUNS))
        adjective = contrast_words[0] if brighter else contrast_words[1]
        rois.append(
            PictureRoi(
                box=box,
                brighter=brighter,
                phrase=f"this {adjective} {shape} {noun}",
                position=position_words((box[0] + box[2]) / 2, (box[1] + box[3]) / 2),
            )
        )
        # Keep the next region clear of this one.
        gx0, gx1 = int(max(0, x1 - 0.5 * half_w)), int(min(sw, x2 + 0.5 * half_w))
        gy0, gy1 = int(max(0, y1 - 0.5 * half_h)), int(min(sh, y2 + 0.5 * half_h))
        saliency[gy0:gy1, gx0:gx1] = 0
    return rois
