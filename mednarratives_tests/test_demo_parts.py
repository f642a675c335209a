"""The demo generator's parts: pointer sprites and movement, images, regions of interest."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from mednarratives_assets.demo import lecture
from mednarratives_assets.demo.rois import find_rois, position_words
from mednarratives_assets.synthetic.medical_images import folder_images, packaged_images
from mednarratives_assets.synthetic.pointers import (
    CURSOR_SHAPES,
    CURSOR_THEMES,
    CursorStyle,
    CursorTrack,
    paste_sprite,
    render_sprite,
)


@pytest.mark.parametrize("shape", CURSOR_SHAPES)
@pytest.mark.parametrize("theme", CURSOR_THEMES)
def test_sprites_differ_by_style_and_scale_with_size(shape, theme):
    small, large = render_sprite(CursorStyle(shape, theme, 24)), render_sprite(CursorStyle(shape, theme, 48))
    assert large.rgba.shape[0] > 1.8 * small.rgba.shape[0]
    opaque = small.rgba[..., 3] == 255
    fill = np.median(small.rgba[..., :3][opaque], axis=0)
    if shape not in ("crosshair", "ibeam"):  # those are mostly edge
        assert np.abs(fill - CURSOR_THEMES[theme][0]).max() < 60
    frame = np.full((100, 100, 3), 128, np.uint8)
    paste_sprite(frame, small, 50, 50)
    assert (frame != 128).any()
    paste_sprite(frame, small, -500, -500)  # off the frame: nothing drawn, no error


@pytest.mark.parametrize("shape", CURSOR_SHAPES)
def test_a_shadow_falls_below_right_and_keeps_the_hotspot(shape):
    plain = render_sprite(CursorStyle(shape, "light", 40))
    shadowed = render_sprite(CursorStyle(shape, "light", 40, shadow=True))
    assert shadowed.hotspot == plain.hotspot
    h, w = plain.rgba.shape[:2]
    assert shadowed.rgba.shape[0] > h and shadowed.rgba.shape[1] > w
    assert (shadowed.rgba[:h, :w, 3].astype(int) >= plain.rgba[..., 3].astype(int) - 3).all()
    outside = np.ones(shadowed.rgba.shape[:2], bool)
    outside[:h, :w] = plain.rgba[..., 3] == 0
    shadow = shadowed.rgba[outside & (shadowed.rgba[..., 3] > 8)]  # pixels only the shadow covers
    assert len(shadow) > 40 and shadow[:, 3].max() < 160 and shadow[:, :3].max() < 80


@pytest.mark.parametrize(("changes", "message"), [({"shape": "star"}, "star"), ({"size": 4}, "4 px")])
def test_bad_cursor_styles_are_named(changes, message):
    with pytest.raises(ValueError, match=message):
        CursorStyle(**changes)


def test_movement_arrives_on_time_and_stays_near_its_path():
    track = CursorTrack(300, 30, (1280, 720), np.random.default_rng(0))
    track.move_to((200, 200))
    track.hold_until(1.0)
    arrival = track.move_to((900, 500), arrive_by=3.0)
    assert arrival == pytest.approx(3.0)
    track.hold_until(4.0, tremor_px=0.0)
    still = slice(int(np.ceil(3.0 * 30)), int(4.0 * 30))
    assert np.allclose(track.x[still], 900) and np.allclose(track.y[still], 500)
    moving = slice(31, 90)
    p0, p1 = np.array([200, 200]), np.array([900, 500])
    points = np.stack([track.x[moving], track.y[moving]], axis=1)
    along = np.clip((points - p0) @ (p1 - p0) / np.sum((p1 - p0) ** 2), 0, 1)
    off_path = np.linalg.norm(points - (p0 + along[:, None] * (p1 - p0)), axis=1)
    assert off_path.max() < 0.4 * np.linalg.norm(p1 - p0)
    assert track.visible[30:120].all()


def test_dwelling_stays_inside_the_box_and_leaving_hides_the_pointer():
    box = (400.0, 300.0, 520.0, 380.0)
    for style in ("still", "tremor", "circle"):
        track = CursorTrack(200, 30, (1280, 720), np.random.default_rng(1))
        track.move_to((460, 340))
        start = int(np.ceil(track.t * 30))
        track.dwell_until(4.0, box, style)
        xs, ys = track.x[start:120], track.y[start:120]
        assert (xs >= box[0]).all() and (xs <= box[2]).all() and (ys >= box[1]).all() and (ys <= box[3]).all()
        track.leave_frame()
        track.hide_until(6.0)
        assert not track.visible[int(np.ceil(track.t * 30)) - 1 : 180].any()


def test_packaged_images_are_real_and_varied():
    images = packaged_images()
    assert len(images) >= 10
    expected = {"CT", "MRI", "X-ray", "ultrasound", "histopathology", "ophthalmology"}
    assert expected <= {i.modality for i in images}
    for image in images:
        pixels = image.load()
        assert pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 3, image.image_id
        assert min(pixels.shape[:2]) >= 128 and pixels.std() > 8, image.image_id


def test_images_folder_errors_name_the_file_and_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="metadata.jsonl"):
        folder_images(tmp_path)
    cv2.imwrite(str(tmp_path / "a.png"), np.full((200, 200, 3), 90, np.uint8))
    rows = [
        {
            "image": "a.png",
            "caption": "An axial CT of the chest.",
            "modality": "CT",
            "split": "train",
            "location_category": "Thorax",
        },
        {"image": "a.png", "caption": "A held out image here.", "split": "dev"},
        {"image": "missing.png", "caption": "No such file on disk."},
    ]
    (tmp_path / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n{broken\n")
    with pytest.raises(ValueError, match="line 4"):
        folder_images(tmp_path)
    (tmp_path / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    [image] = folder_images(tmp_path)
    assert (
        image.modality == "CT" and image.region == "thorax" and image.caption == "An axial CT of the chest."
    )
    assert image.load().shape == (200, 200, 3)


def test_rois_find_the_lesion_and_name_it_by_modality():
    scan = np.zeros((400, 400), np.uint8)
    cv2.circle(scan, (200, 200), 170, 90, -1)  # the body
    cv2.circle(scan, (140, 130), 18, 200, -1)  # a bright lesion, upper left
    cv2.circle(scan, (270, 280), 14, 20, -1)  # a dark one, lower right
    picture = np.repeat(scan[..., None], 3, axis=2)
    rois = find_rois(picture, "CT", 2, np.random.default_rng(0))
    assert len(rois) == 2
    found = {}
    for roi in rois:
        x1, y1, x2, y2 = roi.box
        assert 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1
        centre = ((x1 + x2) / 2 * 400, (y1 + y2) / 2 * 400)
        found["bright" if roi.brighter else "dark"] = (centre, roi)
    (centre, bright), (centre_dark, dark) = found["bright"], found["dark"]
    assert np.hypot(centre[0] - 140, centre[1] - 130) < 30 and "hyperdense" in bright.phrase
    assert np.hypot(centre_dark[0] - 270, centre_dark[1] - 280) < 30 and "hypodense" in dark.phrase
    assert bright.position == "in the upper left" and dark.position == "in the lower right"
    assert "hyperintense" in find_rois(picture, "MRI", 1, np.random.default_rng(0))[0].phrase


@pytest.mark.parametrize(
    ("cx", "cy", "words"),
    [(0.2, 0.2, "in the upper left"), (0.5, 0.5, "near the center"), (0.8, 0.5, "on the right side")],
)
def test_position_words(cx, cy, words):
    assert position_words(cx, cy) == words


def test_an_unreadable_image_is_skipped_and_the_lecture_still_made(tmp_path, caplog):
    from mednarratives_assets.demo.corpus import DemoCorpusConfig, generate_corpus
    from mednarratives_assets.evaluation.ground_truth import load_truth
    from mednarratives_assets.settings import DataLayout

    images = tmp_path / "images"
    images.mkdir()
    picture = np.zeros((256, 256, 3), np.uint8)
    cv2.circle(picture, (128, 128), 100, (120, 120, 120), -1)
    cv2.circle(picture, (90, 100), 15, (230, 230, 230), -1)
    cv2.imwrite(str(images / "good.png"), picture)
    (images / "corrupt.png").write_bytes(b"\x89PNG not really")
    rows = [
        {"image": name, "caption": f"An axial CT slice, file {name}.", "modality": "CT"}
        for name in ("corrupt.png", "good.png")
    ]
    (images / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    layout = DataLayout(tmp_path / "data", tmp_path / "data" / "db.duckdb")
    config = DemoCorpusConfig(
        channels=1, videos_per_channel=1, seconds=15, width=320, height=240, fps=10, images_dir=str(images)
    )
    [entry] = generate_corpus(layout, config, workers=1, log=lambda _: None)
    truth = load_truth(layout.data_root / entry["truth"])
    assert {c["image"]["image_id"] for c in truth["chunks"] if c["image"]} == {"good"}
    assert "corrupt" in caplog.text

    (images / "good.png").write_bytes(b"broken too")
    with pytest.raises(ValueError, match="none of the 2 images could be read"):
        generate_corpus(layout, config, workers=1, log=lambda _: None, force=True)


def test_a_numbered_caption_is_narrated_without_its_numbers():
    caption = (
        "1. Mild stranding in the lesser sac. 2. Free fluid in the pelvis. 3. A long third finding here."
    )
    assert (
        lecture._first_sentences(caption, max_words=14)
        == "Mild stranding in the lesser sac. Free fluid in the pelvis."
    )
