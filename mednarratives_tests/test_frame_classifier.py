"""The medical-frame classifier: its generated frames, its settings, a small training run, its file."""

from __future__ import annotations

import json
import re
import time

import cv2
import dagster as dg
import numpy as np
import pytest
import torch
from PIL import Image

from mednarratives_assets.default_models import shipped_model
from mednarratives_assets.definitions import build_definitions
from mednarratives_assets.defs.cursor_detector import cursor_detector
from mednarratives_assets.defs.frame_classifier import frame_classifier
from mednarratives_assets.stages.frame_classifier import (
    ClassifierTrainingSettings,
    FrameClassifier,
    train_frame_classifier,
    training_images,
)
from mednarratives_assets.synthetic.classifier_frames import NEGATIVE_KINDS, negative_frame, positive_frame
from mednarratives_assets.synthetic.medical_images import MedicalImage, packaged_images


@pytest.mark.parametrize("kind", NEGATIVE_KINDS)
def test_negative_frames_are_rgb_and_vary_with_the_seed(kind):
    frame = negative_frame(kind, np.random.default_rng(0), size=(320, 180))
    assert frame.shape == (180, 320, 3) and frame.dtype == np.uint8
    assert frame.std() > 5  # something is drawn, not a flat colour
    again = negative_frame(kind, np.random.default_rng(0), size=(320, 180))
    other = negative_frame(kind, np.random.default_rng(1), size=(320, 180))
    assert np.array_equal(frame, again)
    assert not np.array_equal(frame, other)


def test_unknown_negative_kind_is_refused():
    with pytest.raises(ValueError, match="'slideshow'"):
        negative_frame("slideshow", np.random.default_rng(0))


def test_positive_frames_show_the_picture_at_varied_sizes():
    """Same seed, a black and a white picture: where the frames differ is where the picture lies."""
    black, white = np.zeros((200, 200, 3), np.uint8), np.full((200, 200, 3), 255, np.uint8)
    shares = []
    for seed in range(24):
        dark = positive_frame(black, np.random.default_rng(seed))
        light = positive_frame(white, np.random.default_rng(seed))
        assert dark.shape == (360, 640, 3) and dark.dtype == np.uint8
        region = (np.abs(light.astype(int) - dark.astype(int)).max(axis=2) > 100).astype(np.uint8)
        _, _, stats, _ = cv2.connectedComponentsWithStats(region)
        largest = stats[1:][np.argmax(stats[1:, cv2.CC_STAT_AREA])]
        w, h = largest[cv2.CC_STAT_WIDTH], largest[cv2.CC_STAT_HEIGHT]
        assert 0.6 < w / h < 1.7  # a square picture, cropped by at most a quarter a side
        inside = region.astype(bool)
        assert dark[inside].mean() < 70 and light[inside].mean() > 185
        shares.append(w * h / (640 * 360))
    assert min(shares) > 0.03 and max(shares) > 0.5  # from a small part of the slide to most of it


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"frames_per_class": 2}, "frames_per_class"),
        ({"epochs": 0}, "epochs"),
        ({"epochs": 2.5}, "epochs"),
        ({"held_out_fraction": 0.0}, "held_out_fraction"),
        ({"held_out_fraction": 1.5}, "held_out_fraction"),
        ({"seed": -1}, "seed"),
        ({"threads": 0}, "threads"),
    ],
)
def test_bad_settings_name_the_field_and_value(changes, field):
    value = next(iter(changes.values()))
    with pytest.raises(ValueError, match=rf"{field}.*{value}"):
        ClassifierTrainingSettings(**changes).validated()
    assert ClassifierTrainingSettings().validated() == ClassifierTrainingSettings()


def test_training_images_add_only_the_folders_dev_split(tmp_path):
    (tmp_path / "images").mkdir()
    records = []
    for name, split in (("a", "train"), ("b", "dev"), ("c", "dev")):
        Image.new("RGB", (32, 32), (90, 90, 90)).save(tmp_path / "images" / f"{name}.png")
        records.append({"image": f"images/{name}.png", "split": split, "caption": "an axial CT slice"})
    (tmp_path / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in records), encoding="utf-8")
    packaged = {image.image_id for image in packaged_images()}
    assert {image.image_id for image in training_images(tmp_path)} == packaged | {"b", "c"}
    assert {image.image_id for image in training_images(tmp_path / "missing")} == packaged
    assert {image.image_id for image in training_images(None)} == packaged


def test_unreadable_images_are_skipped_and_too_few_refused(tmp_path):
    broken = MedicalImage("broken", "nowhere", "CT", "head", "a CT", tmp_path / "missing.png", "picture")
    lines: list[str] = []
    with pytest.raises(ValueError, match="at least 2 usable medical images"):
        train_frame_classifier([broken, packaged_images()[0]], ClassifierTrainingSettings(), log=lines.append)
    assert any("broken" in line for line in lines)


@pytest.fixture(scope="module")
def trained() -> tuple[FrameClassifier, list[str]]:
    lines: list[str] = []
    settings = ClassifierTrainingSettings(frames_per_class=240, epochs=6)
    return train_frame_classifier(packaged_images(), settings, log=lines.append), lines


@pytest.mark.slow  # the module's `trained` fixture trains for about two minutes
def test_a_small_training_run_learns(trained):
    classifier, lines = trained
    metrics = classifier.metrics
    assert metrics["held_out_accuracy"] >= 0.85, metrics
    assert set(metrics["held_out_accuracy_by_kind"]) == {"medical", *NEGATIVE_KINDS}
    assert metrics["n_train_frames"] == 480 and metrics["n_held_out_frames"] == 160
    assert metrics["n_train_images"] + metrics["n_held_out_images"] == len(packaged_images())
    assert len(metrics["held_out_image_ids"]) == metrics["n_held_out_images"] >= 1
    for key in ("held_out_precision", "held_out_recall", "epochs", "train_seconds", "image_sources"):
        assert key in metrics
    assert any(line.startswith("epoch 6/6") for line in lines)


@pytest.mark.slow  # the module's `trained` fixture trains for about two minutes
def test_scores_are_probabilities_for_frames_of_any_size(trained):
    classifier, _ = trained
    picture = packaged_images()[0].load()
    frames = [
        positive_frame(picture, np.random.default_rng(3), size=(1280, 720)),
        negative_frame("text_slide", np.random.default_rng(3), size=(480, 360)),
    ]
    scores = classifier.medical_scores(frames)
    assert scores.shape == (2,) and scores.dtype == np.float32
    assert ((scores >= 0) & (scores <= 1)).all()
    assert classifier.medical_scores([]).shape == (0,)
    with pytest.raises(ValueError, match="frame 1"):
        classifier.medical_scores([frames[0], frames[0].astype(np.float32)])


@pytest.mark.slow  # the module's `trained` fixture trains for about two minutes
def test_save_and_load_give_the_same_scores(trained, tmp_path):
    classifier, _ = trained
    frames = [negative_frame(kind, np.random.default_rng(5)) for kind in NEGATIVE_KINDS]
    path = tmp_path / "model" / "frame_classifier.pt"
    classifier.save(path)
    loaded = FrameClassifier.load(path)
    assert np.array_equal(loaded.medical_scores(frames), classifier.medical_scores(frames))
    assert loaded.metrics == classifier.metrics


def test_loading_a_missing_or_corrupt_file_names_the_path(tmp_path):
    missing = tmp_path / "nothing.pt"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        FrameClassifier.load(missing)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match=re.escape(str(corrupt))):
        FrameClassifier.load(corrupt)
    other = tmp_path / "other.pt"
    torch.save({"weights": [1, 2, 3]}, other)
    with pytest.raises(ValueError, match=re.escape(str(other))):
        FrameClassifier.load(other)


@pytest.mark.parametrize(
    ("asset", "minutes", "job"),
    [
        (frame_classifier, "about 5 minutes", "frame_classifier_job"),
        (cursor_detector, "about 20 minutes", "cursor_detector_job"),
    ],
)
def test_unconfirmed_training_records_the_model_in_use_and_trains_nothing(
    asset, minutes, job, layout, resources, instance
):
    """'Materialize all' in the UI gives no config: the models are not trained unasked (minutes of
    work); the asset records the shipped model the stages use, so the assets after it still run."""
    name = asset.key.to_user_string()
    started = time.monotonic()
    result = dg.materialize([asset], resources=resources, instance=instance)
    assert time.monotonic() - started < 30
    [materialization] = result.asset_materializations_for_node(name)
    metadata = materialization.metadata
    assert metadata["path"].value == str(shipped_model(name)) and metadata["trained_now"].value is False
    assert metadata["to_train"].value == job
    said = " ".join(entry.user_message for entry in instance.all_logs(result.run_id))
    assert f"{name}: not trained (training takes {minutes}" in said and "confirm_training: true" in said
    assert not layout.models_dir.exists() or not any(layout.models_dir.iterdir())


def test_the_training_jobs_confirm_training(layout):
    """Launching frame_classifier_job or cursor_detector_job trains: their config confirms it."""
    defs = build_definitions(layout)
    for asset in ("frame_classifier", "cursor_detector"):
        confirmed = {"ops": {asset: {"config": {"confirm_training": True}}}}
        assert defs.resolve_job_def(f"{asset}_job").run_config == confirmed
