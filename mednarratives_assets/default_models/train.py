"""Train the shipped default models again: `python -m mednarratives_assets.default_models.train`.

The assets' default settings and images: those pip packages ship, plus the dev split of MedPix
when its folder is present, as in the generalization issue's measurements (the JSON beside each
model lists the image sources; its training data fingerprint comes out the same wherever the same
images are). No image is copied into the package, only weights. About 5 minutes for the frame
classifier and 20 for the cursor detector on 2 cores.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from mednarratives_assets.default_models import DEFAULT_MODELS_DIR, SHIPPED_FILES
from mednarratives_assets.settings import MEDPIX_DIR
from mednarratives_assets.stages.cursor_detector import DetectorTrainingSettings, train_cursor_detector
from mednarratives_assets.stages.frame_classifier import (
    ClassifierTrainingSettings,
    pictures_by_modality,
    train_frame_classifier,
    training_images,
    usable_pictures,
)


def log(message: str) -> None:
    print(time.strftime("%H:%M:%S"), message, flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", choices=sorted(SHIPPED_FILES), default=sorted(SHIPPED_FILES))
    parser.add_argument("--out", type=Path, default=DEFAULT_MODELS_DIR)
    parser.add_argument(
        "--images",
        type=Path,
        default=MEDPIX_DIR,
        help="a folder with metadata.jsonl whose dev split joins in",
    )
    args = parser.parse_args(argv)
    images = training_images(args.images if args.images.is_dir() else None)
    if "frame_classifier" in args.models:
        classifier = train_frame_classifier(images, ClassifierTrainingSettings(), log)
        classifier.save(args.out / SHIPPED_FILES["frame_classifier"])
    if "cursor_detector" in args.models:
        settings = DetectorTrainingSettings()
        pictures = pictures_by_modality(usable_pictures(images, log), settings.seed)
        with tempfile.TemporaryDirectory(prefix="cursor-detector-") as work:
            detector, _ = train_cursor_detector(settings, pictures, Path(work), log)
            detector.save(args.out / SHIPPED_FILES["cursor_detector"], settings)


if __name__ == "__main__":
    main()
