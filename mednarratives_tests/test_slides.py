"""Slide designs: every design draws every slide kind, pictures and text land where the slide says,
and the frame classifier's designed slides use only the designs it is given."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mednarratives_assets.synthetic.classifier_frames import draw_negative, draw_positive, positive_frame
from mednarratives_assets.synthetic.slides import (
    SLIDE_DESIGNS,
    TEXT_POSITIONS,
    THEMES,
    SlideDesign,
    bullet_slide,
    designed_image_slide,
    image_slide,
    title_slide,
)

SIZES = ((854, 480), (1280, 720), (1920, 1080))
DARK = {"dark", "slate", "night-header", "graphite-shadow", "carbon-framed", "ocean-mat"}
LIGHT = {"light", "paper-header", "clinic-blue", "cream-border", "ivory-banded", "white-minimal"}


def _picture(seed: int, shape: tuple[int, int] = (300, 260)) -> np.ndarray:
    """A picture whose every part differs: smooth gradients plus a seeded pattern."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]]
    pattern = rng.integers(0, 60, (shape[0] // 10 + 1, shape[1] // 10 + 1, 3))[ys // 10, xs // 10]
    base = np.stack([xs * 180 / shape[1], ys * 180 / shape[0], (xs + ys) * 90 / sum(shape)], axis=2)
    return (base + pattern).clip(0, 255).astype(np.uint8)


def _corner(size: tuple[int, int], corner: str | None) -> tuple[int, int, int, int] | None:
    if corner is None:
        return None
    w, h = round(size[0] * 0.2), round(size[0] * 0.2 * 9 / 16)
    margin = round(size[1] * 0.02)
    x = margin if "left" in corner else size[0] - w - margin
    y = margin if "top" in corner else size[1] - h - margin
    return x, y, w, h


def _inside(inner, outer) -> bool:
    return (
        inner[0] >= outer[0]
        and inner[1] >= outer[1]
        and inner[0] + inner[2] <= outer[0] + outer[2]
        and inner[1] + inner[3] <= outer[1] + outer[3]
    )


def _overlap(a, b) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def test_the_designs_are_the_named_twelve_half_dark_and_half_light():
    assert set(SLIDE_DESIGNS) == DARK | LIGHT
    for name, design in SLIDE_DESIGNS.items():
        assert design.name == name and design.tone == ("dark" if name in DARK else "light")
    assert set(THEMES) == {"dark", "light", "slate"} and all(THEMES[n] is SLIDE_DESIGNS[n] for n in THEMES)
    looks = {
        (d.gradient, d.header_bar, d.image_frame, d.frame_colour, d.footer, d.heading_align, d.accent_bar)
        for d in SLIDE_DESIGNS.values()
    }
    assert len(looks) == len(SLIDE_DESIGNS)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", SLIDE_DESIGNS)
def test_every_design_draws_every_slide_kind(name, size):
    design = SLIDE_DESIGNS[name]
    w, h = size
    title = title_slide(size, design, "Chest imaging cases", "Radiology rounds")
    bullets, anchors = bullet_slide(size, design, "Key points", ["CT: chest", "MRI: knee", "Describe it"])
    legacy, rect = image_slide(size, design, "CT head", _picture(0), ["CT", "Head"])
    designed = [
        designed_image_slide(size, design, "CT · abdomen", pictures, ["Axial CT"], position, 3, rng)
        for pictures, position, rng in (
            ([_picture(1)], "beside", np.random.default_rng(0)),
            ([_picture(1), _picture(2, (200, 320))], "over", np.random.default_rng(1)),
        )
    ]
    for pixels in (title, bullets, legacy, *(d.pixels for d in designed)):
        assert pixels.shape == (h, w, 3) and pixels.dtype == np.uint8
        assert pixels.std() > 10
    assert len(anchors) == 3 and all(0 < x < w and 0 < y < h for x, y in anchors)
    assert _inside(rect, (0, 0, w, h)) and rect[2] > w * 0.2
    for slide in designed:
        assert slide.design == name and len(slide.image_rects) == len(slide.frame_rects)
    # the background where nothing is drawn: left of the body, below the heading
    tone = _luminance(title[round(h * 0.62), 3])
    assert tone < 90 if design.tone == "dark" else tone > 190


def _luminance(pixel) -> float:
    return 0.299 * pixel[0] + 0.587 * pixel[1] + 0.114 * pixel[2]


CORNERS = (None, "top-left", "top-right", "bottom-left", "bottom-right")


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", SLIDE_DESIGNS)
def test_pictures_text_and_annotations_stay_in_their_places(name, size):
    design = SLIDE_DESIGNS[name]
    w, h = size
    for i, (corner, position) in enumerate((c, p) for c in CORNERS for p in TEXT_POSITIONS):
        n = 1 + i % 2
        reserved = _corner(size, corner)
        pictures = [_picture(i), _picture(i + 1, (180, 320))][:n]
        notes = ["Axial CT of the abdomen", "Hypodense lesion in segment four"]
        heading = "A heading that runs on and on across the slide"
        slide = designed_image_slide(
            size, design, heading, pictures, notes, position, 3, np.random.default_rng(i), reserved
        )
        context = f"{name} {size} {corner} {position} {n} pictures"
        assert len(slide.image_rects) == n, context
        for j, (picture, frame) in enumerate(zip(slide.image_rects, slide.frame_rects, strict=True)):
            assert _inside(picture, frame) and _inside(frame, (0, 0, w, h)), context
            assert picture[2] > w * 0.08 and picture[3] > h * 0.08, context
            assert not _overlap(frame, slide.heading_rect), context
            assert reserved is None or not _overlap(frame, reserved), context
            assert all(not _overlap(frame, other) for other in slide.frame_rects[j + 1 :]), context
        assert reserved is None or not _overlap(slide.heading_rect, reserved), context
        notes_rect = slide.notes_rect
        if position == "none":
            assert notes_rect is None, context
        else:
            assert notes_rect is not None and _inside(notes_rect, (0, 0, w, h)), context
            assert reserved is None or not _overlap(notes_rect, reserved), context
            assert not _overlap(notes_rect, slide.heading_rect), context
        if position == "over":
            x, y, pw, ph = slide.image_rects[0]
            assert _inside(notes_rect, slide.image_rects[0]), context
            assert notes_rect[1] + notes_rect[3] == y + ph and notes_rect[1] >= y + ph * 0.5, context
        elif position in ("beside", "below"):
            assert all(not _overlap(notes_rect, frame) for frame in slide.frame_rects), context
        if position == "below":
            assert notes_rect[1] >= max(f[1] + f[3] for f in slide.frame_rects), context
        if position == "beside":
            lefts, rights = [f[0] for f in slide.frame_rects], [f[0] + f[2] for f in slide.frame_rects]
            assert notes_rect[0] >= max(rights) or notes_rect[0] + notes_rect[2] <= min(lefts), context
        assert len(slide.annotations) == 3, context
        for annotation in slide.annotations:
            assert _inside(annotation.rect, slide.image_rects[annotation.picture]), context
            if position == "over" and annotation.picture == 0:
                assert not _overlap(annotation.rect, notes_rect), context
            if annotation.kind == "arrow":
                px, py = annotation.point
                ax, ay, aw, ah = annotation.rect
                assert ax <= px < ax + aw and ay <= py < ay + ah, context
        letters = [a.text for a in slide.annotations if a.kind == "letter"]
        assert letters == list("ABC")[: len(letters)], context
        assert {a.kind for a in slide.annotations} <= {"arrow", "letter"}


@pytest.mark.parametrize("name", ["night-header", "clinic-blue", "graphite-shadow", "white-minimal"])
def test_picture_pixels_are_at_their_rectangles(name):
    pictures = [_picture(3), _picture(4, (220, 340))]
    slide = designed_image_slide(
        (1280, 720), SLIDE_DESIGNS[name], "MRI", pictures, ["T2"], "over", 2, np.random.default_rng(2)
    )
    covered = [a.rect for a in slide.annotations] + [slide.notes_rect]
    for picture, (x, y, w, h) in zip(pictures, slide.image_rects, strict=True):
        expected = np.asarray(Image.fromarray(picture).resize((w, h), Image.Resampling.LANCZOS)).astype(int)
        shown = slide.pixels[y : y + h, x : x + w].astype(int)
        clear = np.ones((h, w), bool)
        for cx, cy, cw, ch in covered:
            clear[max(0, cy - y) : max(0, cy + ch - y), max(0, cx - x) : max(0, cx + cw - x)] = False
        assert clear.mean() > 0.4
        assert np.abs(shown - expected)[clear].max() == 0
    # and the two pictures are not each other's: the first picture is not where the second lies
    x, y, w, h = slide.image_rects[1]
    wrong = np.asarray(Image.fromarray(pictures[0]).resize((w, h), Image.Resampling.LANCZOS)).astype(int)
    assert np.abs(slide.pixels[y : y + h, x : x + w].astype(int) - wrong).mean() > 10


@pytest.mark.parametrize("position", ["beside", "below", "over"])
@pytest.mark.parametrize("name", ["dark", "paper-header", "carbon-framed", "ocean-mat"])
def test_notes_are_drawn_where_the_slide_says(name, position):
    """Same layout, notes with their words swapped: the slides differ only inside notes_rect."""

    def draw(notes):
        return designed_image_slide(
            (1280, 720),
            SLIDE_DESIGNS[name],
            "CT",
            [_picture(5)],
            notes,
            position,
            0,
            np.random.default_rng(9),
        )

    one, other = draw(["Axial lesion", "Hypodense rim"]), draw(["lesion Axial", "rim Hypodense"])
    assert one.notes_rect == other.notes_rect and one.image_rects == other.image_rects
    changed = np.abs(one.pixels.astype(int) - other.pixels.astype(int)).max(axis=2) > 0
    x, y, w, h = one.notes_rect
    assert changed[y : y + h, x : x + w].sum() > 50
    changed[y : y + h, x : x + w] = False
    assert not changed.any()
    if position == "over":  # the caption box darkens the picture under it
        px, py, pw, ph = one.image_rects[0]
        plain = draw([]).pixels
        under = (slice(y, y + h), slice(x, x + w))
        assert one.pixels[under].astype(int).mean() < plain[under].astype(int).mean() - 20


def test_annotations_are_outlined_white_or_yellow_marks_on_the_picture():
    slide = designed_image_slide(
        (1280, 720), SLIDE_DESIGNS["ocean-mat"], "CT", [_picture(6)], [], "none", 3, np.random.default_rng(4)
    )
    plain = designed_image_slide(
        (1280, 720), SLIDE_DESIGNS["ocean-mat"], "CT", [_picture(6)], [], "none", 0, np.random.default_rng(4)
    )
    assert slide.image_rects == plain.image_rects and len(slide.annotations) == 3
    for annotation in slide.annotations:
        x, y, w, h = annotation.rect
        patch = slide.pixels[y : y + h, x : x + w].reshape(-1, 3).astype(int)
        bright = (patch.min(axis=1) > 230) | ((patch[:, 0] > 230) & (patch[:, 1] > 200) & (patch[:, 2] < 40))
        dark = patch.max(axis=1) < 40
        assert bright.sum() > 20 and dark.sum() > 20, annotation
        assert annotation.describe()["kind"] == annotation.kind
    changed = np.abs(slide.pixels.astype(int) - plain.pixels.astype(int)).max(axis=2) > 0
    for annotation in slide.annotations:
        x, y, w, h = annotation.rect
        changed[y : y + h, x : x + w] = False
    assert not changed.any()  # nothing drawn outside the annotations' rectangles


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pictures": []}, "1 or 2 pictures, not 0"),
        ({"text_position": "under"}, "'under'"),
        ({"annotations": 4}, "not 4"),
        ({"pictures": [np.zeros((10, 10), np.uint8)]}, "picture 0"),
    ],
)
def test_bad_inputs_are_named(kwargs, message):
    arguments = {
        "size": (854, 480),
        "design": SLIDE_DESIGNS["light"],
        "heading": "CT",
        "pictures": [_picture(0)],
        "notes": ["a"],
        "text_position": "beside",
        "annotations": 0,
        "rng": np.random.default_rng(0),
    } | kwargs
    with pytest.raises(ValueError, match=message):
        designed_image_slide(**arguments)
    with pytest.raises(ValueError, match="'bevel'"):
        SlideDesign("odd", (0, 0, 0), (255, 255, 255), (255, 0, 0), image_frame="bevel")


TRAINING = ("night-header", "cream-border", "ocean-mat")


def test_classifier_positives_use_only_the_designs_given_and_show_the_picture_in_its_boxes():
    black, white = np.zeros((200, 200, 3), np.uint8), np.full((200, 200, 3), 255, np.uint8)
    seen = set()
    for seed in range(40):
        dark = draw_positive(black, np.random.default_rng(seed), pointer=False, designs=TRAINING)
        light = draw_positive(white, np.random.default_rng(seed), pointer=False, designs=TRAINING)
        assert dark.design == light.design and dark.boxes == light.boxes
        seen.add(dark.design)
        if dark.design is None:
            continue
        differs = np.abs(light.frame.astype(int) - dark.frame.astype(int)).max(axis=2) > 100
        inside = np.zeros_like(differs)
        for x0, y0, x1, y1 in dark.boxes:
            inside[max(0, y0 - 4) : y1 + 4, max(0, x0 - 4) : x1 + 4] = True
            assert differs[y0:y1, x0:x1].mean() > 0.4, (seed, dark.design)
        assert not (differs & ~inside).any(), (seed, dark.design)
    assert None in seen and len(seen) >= 3 and seen <= {None, *TRAINING}
    again = draw_positive(black, np.random.default_rng(3), designs=TRAINING)
    assert np.array_equal(again.frame, draw_positive(black, np.random.default_rng(3), designs=TRAINING).frame)


def test_without_designs_positives_are_as_before_and_unknown_designs_are_refused():
    picture = _picture(7)
    for seed in range(6):
        drawn = draw_positive(picture, np.random.default_rng(seed))
        assert drawn.design is None
        assert np.array_equal(drawn.frame, positive_frame(picture, np.random.default_rng(seed)))
    with pytest.raises(ValueError, match="'neon'"):
        for seed in range(10):  # half the frames ask for a design
            draw_positive(picture, np.random.default_rng(seed), designs=["night-header", "neon"])


@pytest.mark.parametrize("kind", ["photo_slide", "text_slide"])
def test_classifier_negatives_use_only_the_designs_given(kind):
    designs = {
        draw_negative(kind, np.random.default_rng(seed), designs=TRAINING).design for seed in range(30)
    }
    assert None in designs and len(designs) >= 3 and designs <= {None, *TRAINING}
    assert draw_negative("chart", np.random.default_rng(0), designs=TRAINING).design is None
