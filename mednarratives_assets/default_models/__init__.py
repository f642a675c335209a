"""Trained default models that ship with the package, so a fresh install needs no training.

Each weights file has a JSON beside it: the training settings, the sha256 of the generated training
data (the images come from pip packages only, so anyone can make the same data again) and the
held-out figures, training and reserved styles apart. `python -m
mednarratives_assets.default_models.train` makes them again. A model trained under the data root
(the `frame_classifier` and `cursor_detector` assets) takes the place of its default.
"""

from __future__ import annotations

import json
from pathlib import Path

DEFAULT_MODELS_DIR = Path(__file__).parent
SHIPPED_FILES = {"frame_classifier": "frame_classifier.pt", "cursor_detector": "cursor_detector.pt"}


def shipped_model(model: str) -> Path | None:
    """The shipped default of `model`, or None when it has none."""
    name = SHIPPED_FILES.get(model)
    return DEFAULT_MODELS_DIR / name if name else None


def shipped_record(model: str) -> dict:
    """The JSON beside the shipped default: settings, training data fingerprint, held-out figures."""
    path = shipped_model(model)
    if path is None:
        raise KeyError(f"no shipped default for {model!r}; shipped: {', '.join(SHIPPED_FILES)}")
    return json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
