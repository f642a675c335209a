"""The cursor detector: its generated training crops, offline training, scoring, saving and loading."""

from __future__ import annotations

import json
import os
import socket
import traceback
from collections import Counter
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
from PIL import Image, UnidentifiedImageError

from mednarratives_assets.defs.cursor_detector import cursor_detector
from mednarratives_assets.stages.cursor_detector import (
    CursorDetector,
    DetectorTrainingSettings,
    train_cursor_detector,
    use_ultralytics_offline,
)
from mednarratives_assets.synthetic.classifier_frames import shrink_picture
from mednarratives_assets.synthetic.cursor_crops import CROP_PX, SPRITE_HEIGHTS, cursor_crops
from mednarratives_assets.synthetic.medical_images import packaged_images
from mednarratives_assets.synthetic.pointers import CURSOR_SHAPES, LASER_SHAPES
from mednarratives_assets.synthetic.styles import split_cursor_themes
from mednarratives_tests.conftest import step_failure

TRAINING_THEMES = split_cursor_themes("training")


@pytest.fixture(scope="module")
def picture_for():
    pictures = [shrink_picture(image.load()) for image in packaged_images()[:3]]
    return lambda j: pictures[j % len(pictures)]


def test_crops_cover_every_style_and_label_the_visible_pointer_and_its_hotspot(picture_for):
    crops = list(cursor_crops(240, seed=3, picture_for=picture_for, themes=TRAINING_THEMES))
    assert len(crops) == 240
    with_pointer = [crop for crop in crops if crop.box is not None]
    assert 0.45 < len(with_pointer) / len(crops) < 0.75
    styles = [crop.style for crop in with_pointer]
    assert {style.shape for style in styles} == set(CURSOR_SHAPES + LASER_SHAPES)
    assert len({style.theme for style in styles}) >= 5
    assert {style.shadow for style in styles} == {True, False}
    sizes = [style.size for style in styles]
    assert (
        min(sizes) < 20
        and max(sizes) > 45
        and SPRITE_HEIGHTS[0] <= min(sizes) <= max(sizes) <= SPRITE_HEIGHTS[1]
    )
    for crop in crops:
        assert crop.image.shape == (CROP_PX, CROP_PX, 3) and crop.image.dtype == np.uint8
        if crop.box is None:
            assert crop.hotspot is None and crop.style is None
            continue
        x0, y0, x1, y1 = crop.box
        hx, hy = crop.hotspot
        assert 0 <= x0 < x1 <= CROP_PX and 0 <= y0 < y1 <= CROP_PX
        assert 0 < hx < CROP_PX and 0 < hy < CROP_PX
        assert x0 - 2 <= hx <= x1 + 2 and y0 - 2 <= hy <= y1 + 2  # the hotspot lies on the sprite
    cut = [crop for crop in with_pointer if min(crop.box[:2]) == 0 or max(crop.box[2:]) == CROP_PX]
    assert cut, "some pointers should be cut off by the crop's edge"


def test_crops_are_reproducible_from_their_seed(picture_for):
    first = list(cursor_crops(16, seed=5, picture_for=picture_for, themes=TRAINING_THEMES))
    again = list(cursor_crops(16, seed=5, picture_for=picture_for, themes=TRAINING_THEMES))
    other = list(cursor_crops(16, seed=6, picture_for=picture_for, themes=TRAINING_THEMES))
    assert all(np.array_equal(a.image, b.image) and a.box == b.box for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a.image, b.image) for a, b in zip(first, other, strict=True))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"train_crops": 0}, "train_crops"),
        ({"epochs": 1.5}, "epochs"),
        ({"min_confidence": 1.5}, "min_confidence"),
        ({"model_yaml": "yolo11n.yaml"}, "pose model yaml"),
    ],
)
def test_a_wrong_setting_is_named(changes, message):
    with pytest.raises(ValueError, match=message):
        DetectorTrainingSettings(**changes).validated()


def test_training_makes_no_network_call_and_scores_the_held_out_crops(tmp_path, monkeypatch, picture_for):
    """ultralytics and torch are kept offline; other libraries' background threads (pyannote's
    telemetry, loaded by the ASR tests) may try too, and are refused without counting."""
    network_calls: list[tuple] = []

    def refuse(*args, **_kwargs):
        if any(
            f"{os.sep}{lib}{os.sep}" in frame.filename
            for frame in traceback.extract_stack()
            for lib in ("ultralytics", "torch")
        ):
            network_calls.append(args)
        raise OSError("network access is refused while the cursor detector trains")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    tiny = DetectorTrainingSettings(train_crops=64, val_crops=48, epochs=1)
    detector, held_out = train_cursor_detector(tiny, picture_for, tmp_path, log=lambda _: None)
    assert network_calls == []
    metrics = detector.metrics
    for key in ("pose_map50", "pose_map50_95", "box_map50", "recall", "false_positive_rate"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["n_held_out_with_pointer"] + metrics["n_held_out_without_pointer"] == len(held_out) == 48
    assert len(metrics["training_data_sha256"]) == 64


def test_the_detector_finds_the_hotspot_of_a_pointer_it_never_saw(default_cursor_detector, picture_for):
    detector = default_cursor_detector
    crops = [
        crop
        for crop in cursor_crops(64, seed=99, picture_for=picture_for, themes=TRAINING_THEMES)
        if crop.hotspot is not None
    ]
    found = detector.locate([crop.image[..., ::-1].copy() for crop in crops])
    errors = [
        np.hypot(d.x - c.hotspot[0], d.y - c.hotspot[1])
        for c, d in zip(crops, found, strict=True)
        if d is not None
    ]
    assert len(errors) >= 0.3 * len(crops) and np.median(errors) < 5


@pytest.fixture(scope="module")
def untrained_detector(tmp_path_factory) -> CursorDetector:
    """The detector's network as its yaml builds it, untrained: enough to see how crops reach it."""
    use_ultralytics_offline()
    from ultralytics import YOLO

    path = tmp_path_factory.mktemp("untrained-detector") / "cursor_detector.pt"
    YOLO(DetectorTrainingSettings().model_yaml, task="pose").save(str(path))
    return CursorDetector(path, {}, min_confidence=0.5)


def test_a_crop_gets_the_same_detection_in_a_batch_as_alone(untrained_detector, picture_for):
    """Crops go through the network in batches (channels-last); each one's answer is its own."""
    crops = [
        crop.image[..., ::-1].copy()
        for crop in cursor_crops(6, seed=11, picture_for=picture_for, themes=TRAINING_THEMES)
    ]
    together = untrained_detector.locate(crops, min_confidence=0.0, batch=4)
    alone = [untrained_detector.locate([crop], min_confidence=0.0)[0] for crop in crops]
    for batched, single in zip(together, alone, strict=True):
        assert batched is not None and single is not None
        assert (batched.x, batched.y) == pytest.approx((single.x, single.y), abs=1e-3)
        assert batched.box == pytest.approx(single.box, abs=1e-3)
        assert batched.confidence == pytest.approx(single.confidence, abs=1e-5)


def test_loading_ultralytics_leaves_pil_as_it_was(tmp_path):
    """ultralytics patches PIL.Image.open so that an unreadable image tries a pip install and then
    raises ImportError; the platform puts PIL's own back."""
    use_ultralytics_offline()
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG not really")
    with pytest.raises(UnidentifiedImageError):
        Image.open(corrupt)


def test_saved_detector_loads_and_bad_files_are_named(default_cursor_detector, tmp_path):
    detector = default_cursor_detector
    path = tmp_path / "models" / "cursor_detector.pt"
    with pytest.raises(FileNotFoundError, match="cursor_detector.pt"):
        CursorDetector.load(path)
    detector.save(path, DetectorTrainingSettings(min_confidence=0.4))
    loaded = CursorDetector.load(path)
    assert loaded.metrics == detector.metrics and loaded.min_confidence == 0.4
    assert not list(path.parent.glob("*.partial"))

    path.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="cursor_detector.pt cannot be loaded"):
        CursorDetector.load(path)
    sidecar = path.with_suffix(".json")
    sidecar.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match="format"):
        CursorDetector.load(path)


def test_the_asset_trains_offline_and_records_its_metrics(layout, resources, instance):
    tiny = {
        "train_crops": 64,
        "val_crops": 32,
        "epochs": 1,
        "batch": 16,
        "extra_images_dir": "",
        "confirm_training": True,
    }
    result = dg.materialize(
        [cursor_detector],
        resources=resources,
        instance=instance,
        run_config={"ops": {"cursor_detector": {"config": tiny}}},
    )
    metadata = result.asset_materializations_for_node("cursor_detector")[0].metadata
    assert (
        layout.cursor_detector_path.is_file() and layout.cursor_detector_path.with_suffix(".json").is_file()
    )
    assert {"pose_map50", "box_map50", "hotspot_median_error_px", "hotspot_within_6px"} <= set(metadata)
    assert "data:image/png;base64," in metadata["held_out_crops"].value
    assert not list(layout.cache_dir.glob("cursor-detector-*"))  # the training scratch is removed
    assert not (Path.cwd() / "runs").exists()  # nor does ultralytics leave a runs/ folder behind
    assert CursorDetector.load(layout.cursor_detector_path).metrics["n_train_crops"] == 64

    bad = dg.materialize(
        [cursor_detector],
        resources=resources,
        instance=instance,
        run_config={"ops": {"cursor_detector": {"config": {**tiny, "model_yaml": "yolo11n.yaml"}}}},
        raise_on_error=False,
    )
    error = step_failure(bad)
    assert "cursor_detector config: model_yaml" in error
    assert CursorDetector.load(layout.cursor_detector_path).metrics["n_train_crops"] == 64  # kept


def test_kinds_of_style_are_balanced_enough_to_learn(picture_for):
    crops = cursor_crops(400, seed=1, picture_for=picture_for, themes=TRAINING_THEMES)
    shapes = Counter(c.style.shape for c in crops if c.style and c.style.shape in CURSOR_SHAPES)
    assert min(shapes.values()) > 0.15 * sum(shapes.values())
