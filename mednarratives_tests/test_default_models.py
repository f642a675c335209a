"""The default models that ship with the package: small, documented, used unless one is trained,
and as good on freshly generated data as their JSON says."""

from __future__ import annotations

import numpy as np
import pytest

from mednarratives_assets.default_models import SHIPPED_FILES, shipped_model, shipped_record
from mednarratives_assets.defs.resources import build_resources
from mednarratives_assets.settings import MEDPIX_DIR
from mednarratives_assets.stages.cursor_detector import (
    CursorDetector,
    DetectorTrainingSettings,
    hotspot_metrics,
    training_data_fingerprint,
    write_dataset,
)
from mednarratives_assets.stages.frame_classifier import (
    ClassifierTrainingSettings,
    FrameClassifier,
    pictures_by_modality,
    training_images,
    usable_pictures,
)
from mednarratives_assets.stages.frame_classifier import (
    training_data_fingerprint as classifier_data_fingerprint,
)
from mednarratives_assets.synthetic.classifier_frames import (
    FRAME_SIZE,
    NEGATIVE_KINDS,
    negative_frame,
    positive_frame_with_boxes,
)
from mednarratives_assets.synthetic.cursor_crops import cursor_crops
from mednarratives_assets.synthetic.styles import split_cursor_themes, split_designs

MAX_SHIPPED_BYTES = 20 * 2**20
# A fresh set of about 150 crops or frames measures a rate to within about ±0.08 (two standard
# errors); the margins allow that and no more.
MARGIN = 0.12
FRESH_SEED = 9_001  # no training or held-out set of the shipped models uses it


def _packaged_pictures(seed: int = 0):
    return pictures_by_modality(usable_pictures(training_images(None), lambda _: None), seed)


def test_the_shipped_models_are_small_and_carry_their_record():
    total = 0
    for model in SHIPPED_FILES:
        weights = shipped_model(model)
        total += weights.stat().st_size + weights.with_suffix(".json").stat().st_size
        record = shipped_record(model)
        assert record["settings"] and record["metrics"], model
        assert len(record["metrics"]["training_data_sha256"]) == 64, model
    assert total <= MAX_SHIPPED_BYTES
    assert shipped_record("frame_classifier")["metrics"]["held_out_accuracy"] > 0.9
    detector = shipped_record("cursor_detector")["metrics"]
    assert "hotspot_within_6px" in detector and "reserved_themes_hotspot_within_6px" in detector


def test_the_pipeline_uses_a_shipped_model_until_one_is_trained(layout, trained_tiny_classifier):
    models = build_resources(layout)["models"]
    assert models.source("frame_classifier") == shipped_model("frame_classifier")
    assert models.problem("frame_classifier") is None and models.problem("cursor_detector") is None
    shipped_fingerprint = models.fingerprint("frame_classifier")

    trained_tiny_classifier.save(models.path("frame_classifier"))
    assert models.source("frame_classifier") == layout.frame_classifier_path
    assert models.fingerprint("frame_classifier") != shipped_fingerprint  # the stage caches key on it
    assert models.open("frame_classifier").metrics == trained_tiny_classifier.metrics

    layout.frame_classifier_path.write_bytes(b"not a model")  # a damaged one is named, not replaced
    assert "not a readable frame classifier file" in models.problem("frame_classifier")


@pytest.fixture
def trained_tiny_classifier():
    from mednarratives_assets.stages.frame_classifier import train_frame_classifier

    settings = ClassifierTrainingSettings(frames_per_class=len(NEGATIVE_KINDS), epochs=1, threads=1)
    return train_frame_classifier(training_images(None), settings, log=lambda _: None)


def test_the_shipped_frame_classifier_holds_its_figures_on_fresh_frames():
    classifier = FrameClassifier.load(shipped_model("frame_classifier"))
    recorded = shipped_record("frame_classifier")["metrics"]
    picture_for = _packaged_pictures(FRESH_SEED)
    frames, truth = [], []
    for j in range(2 * 12 * len(NEGATIVE_KINDS)):  # 72 medical frames, 12 of each negative kind
        rng = np.random.default_rng([FRESH_SEED, j])
        if j % 2 == 0:
            frame, _ = positive_frame_with_boxes(
                picture_for(j), rng, FRAME_SIZE, designs=split_designs("training")
            )
        else:
            kind = NEGATIVE_KINDS[(j // 2) % len(NEGATIVE_KINDS)]
            frame = negative_frame(kind, rng, FRAME_SIZE, designs=split_designs("training"))
        frames.append(frame)
        truth.append(j % 2 == 0)
    predicted = classifier.medical_scores(frames) >= 0.5
    accuracy = float((predicted == np.array(truth)).mean())
    assert accuracy >= recorded["held_out_accuracy"] - MARGIN, (accuracy, recorded["held_out_accuracy"])


@pytest.mark.parametrize("styles", ["training", "reserved"])
def test_the_shipped_cursor_detector_holds_its_figures_on_fresh_crops(styles):
    detector = CursorDetector.load(shipped_model("cursor_detector"))
    recorded = shipped_record("cursor_detector")["metrics"]
    prefix = "" if styles == "training" else "reserved_themes_"
    crops = list(cursor_crops(160, FRESH_SEED, _packaged_pictures(), themes=split_cursor_themes(styles)))
    fresh = hotspot_metrics(detector, crops)
    for figure in ("hotspot_within_6px", "recall"):
        assert fresh[figure] >= recorded[prefix + figure] - MARGIN, (figure, fresh, recorded)
    assert fresh["false_positive_rate"] <= recorded[prefix + "false_positive_rate"] + MARGIN / 2


@pytest.mark.skipif(not MEDPIX_DIR.is_dir(), reason="the shipped models trained with MedPix's dev split")
def test_the_recorded_training_data_fingerprints_are_made_again(tmp_path):
    images = training_images(MEDPIX_DIR)
    classifier = shipped_record("frame_classifier")
    settings = ClassifierTrainingSettings(**classifier["settings"])
    assert classifier_data_fingerprint(images, settings) == classifier["metrics"]["training_data_sha256"]

    detector = shipped_record("cursor_detector")
    settings = DetectorTrainingSettings(**detector["settings"])
    pictures = pictures_by_modality(usable_pictures(images, lambda _: None), settings.seed)
    data, _ = write_dataset(tmp_path / "dataset", settings, pictures)
    assert training_data_fingerprint(data.parent) == detector["metrics"]["training_data_sha256"]
