"""The `packaged_images` benchmark set: real medical images from pip packages, none the demo shows."""

from itertools import combinations

import numpy as np
import pytest
from PIL import Image

from mednarratives_assets.image_hashing import hash_distance, perceptual_hash
from mednarratives_assets.stages.benchmark_scores import BODY_REGION_WORDS, packaged_images_set
from mednarratives_assets.stages.packaged_eval_images import (
    DUPLICATE_DISTANCE,
    PACKAGED_SOURCES,
    PackagedSource,
    packaged_eval_images,
)
from mednarratives_assets.synthetic.medical_images import packaged_images


def phash(rgb: np.ndarray) -> str:
    return perceptual_hash(np.ascontiguousarray(rgb[..., ::-1]))


@pytest.fixture(scope="module")
def eval_images():
    return packaged_eval_images(log=lambda message: None)


def test_the_set_covers_four_modalities_with_distinct_images(eval_images):
    modalities = {image.source.modality for image in eval_images}
    assert {"CT", "MRI", "ultrasound", "histopathology"} <= modalities
    assert len(eval_images) >= 12
    for a, b in combinations(eval_images, 2):
        distance = hash_distance(phash(a.pixels), phash(b.pixels))
        assert distance > DUPLICATE_DISTANCE, f"{a.source.image_id} and {b.source.image_id}: {distance} bits"
    for image in eval_images:
        assert image.phash == phash(image.pixels)
        assert image.source.region is None or image.source.region in BODY_REGION_WORDS
        assert len(image.source.caption.split()) >= 5


def test_no_image_is_one_the_demo_shows(eval_images):
    demo = packaged_images()
    shown = {(image.path.name, image.frame) for image in demo}
    # The demo shows a multi-frame file's middle frame: frame None there, here the file's frames.
    assert not {(s.name, s.frame) for s in PACKAGED_SOURCES} & shown
    assert not {s.name for s in PACKAGED_SOURCES if s.frame is None} & {name for name, _ in shown}
    demo_hashes = {image.image_id: phash(image.load()) for image in demo}
    for image in eval_images:
        nearest = min(demo_hashes, key=lambda key: hash_distance(image.phash, demo_hashes[key]))
        distance = hash_distance(image.phash, demo_hashes[nearest])
        assert distance > DUPLICATE_DISTANCE, (
            f"{image.source.image_id} is the demo's {nearest} ({distance} bits)"
        )


def test_a_source_that_fails_or_repeats_a_picture_is_skipped_with_its_reason():
    cell = PackagedSource("cell", "skimage", "cell", "histopathology", None, "a cell in saline")
    sources = (
        cell,
        PackagedSource("absent", "stardist", "data/images/no_such.tif", "histopathology", None, "none"),
        PackagedSource("cell_again", "skimage", "cell", "histopathology", None, "the same cell"),
    )
    logs = []
    images = packaged_eval_images(sources, log=logs.append)
    assert [image.source.image_id for image in images] == ["cell"]
    assert logs == [
        "packaged_images: skipped absent (stardist: data/images/no_such.tif): stardist ships no "
        "data/images/no_such.tif",
        "packaged_images: skipped cell_again: the same picture as cell (within 6 pHash bits)",
    ]


def test_images_near_a_training_image_are_dropped_and_the_rest_written_with_labels(eval_images, tmp_path):
    trained = eval_images[0]
    # A crop of a lecture's frame hashes a few bits from the file's picture.
    near = f"{int(trained.phash, 16) ^ 0b10101:016x}"
    logs = []
    eval_set = packaged_images_set(tmp_path, eval_images, [near, "0" * 16], DUPLICATE_DISTANCE, logs.append)
    assert len(eval_set.image_paths) == len(eval_images) - 1
    assert tmp_path / f"{trained.source.image_id}.png" not in eval_set.image_paths
    assert f"packaged_images: {len(eval_images) - 1} images, 1 dropped within 6 pHash bits" in logs[0]
    kept = eval_images[1:]
    with Image.open(eval_set.image_paths[0]) as written:
        assert np.array_equal(np.asarray(written), kept[0].pixels)
    assert eval_set.benchmark == "packaged_images"
    assert eval_set.texts == [image.source.caption for image in kept]
    assert eval_set.labels["zero_shot_modality"] == eval_set.domains == [i.source.modality for i in kept]
    assert set(eval_set.classes["zero_shot_modality"]) == set(eval_set.domains)
    regions = eval_set.labels["zero_shot_body_region"]
    assert set(eval_set.classes["zero_shot_body_region"]) == set(regions) - {None}

    # A task with one class left is not scored; none left: no set.
    ct = [image for image in eval_images if image.source.modality == "CT"]
    ct_only = packaged_images_set(tmp_path / "ct", ct, [], DUPLICATE_DISTANCE, logs.append)
    assert "zero_shot_modality" not in ct_only.labels and "zero_shot_body_region" in ct_only.labels
    assert (
        packaged_images_set(tmp_path / "none", ct, [i.phash for i in ct], DUPLICATE_DISTANCE, logs.append)
        is None
    )
