"""The style space: every axis drawn on its own, and the reserved part never drawn for training."""

from __future__ import annotations

import numpy as np
import pytest

from mednarratives_assets.synthetic import styles
from mednarratives_assets.synthetic.slides import SLIDE_DESIGNS
from mednarratives_assets.synthetic.styles import (
    FRAME_RATES,
    FRAME_SIZES,
    WEBCAM_CORNERS,
    cursor_split,
    design_split,
    draw_style,
    narration_split,
    split_cursor_themes,
    split_designs,
    split_narrations,
    split_voices,
    voice_split,
)


@pytest.fixture(scope="module")
def drawn() -> dict[str, list[styles.LectureStyle]]:
    return {
        split: [draw_style(np.random.default_rng([7, i]), split) for i in range(300)]
        for split in styles.SPLITS
    }


def test_the_split_is_decided_by_name():
    assert voice_split("espeak:en-029+m1") == "reserved"
    assert voice_split("espeak:en-US+f2") == "reserved"
    assert voice_split("espeak:en-GB-scotland+f1") == "reserved"
    assert voice_split("espeak:en-US+m1") == "training"
    assert voice_split("piper:en_US-joe-medium") == "training"
    assert design_split("carbon-framed") == design_split("ivory-banded") == "reserved"
    assert design_split("dark") == "training"
    assert cursor_split("light") == "training"  # the project's drawn pointers
    assert narration_split("terse") == narration_split("socratic") == "reserved"
    assert narration_split("classic") == "training"  # the demo channels'


def test_both_splits_have_values_on_every_axis():
    for split in styles.SPLITS:
        assert split_voices(split), split
        assert split_designs(split), split
    assert split_cursor_themes("training")
    assert set(split_designs("reserved")) == {"carbon-framed", "ivory-banded"}
    assert not set(split_voices("training")) & set(split_voices("reserved"))
    assert not set(split_cursor_themes("training")) & set(split_cursor_themes("reserved"))
    assert split_narrations("training") and split_narrations("reserved")
    assert not set(split_narrations("training")) & set(split_narrations("reserved"))


def test_training_draws_never_touch_the_reserved_part(drawn):
    for style in drawn["training"]:
        assert style.split == "training"
        assert voice_split(style.voice.voice) == "training"
        assert cursor_split(style.pointer.cursor.theme) == "training"
        assert design_split(style.slides.design) == "training"
        assert narration_split(style.narration) == "training"


def test_reserved_draws_use_reserved_voices_and_designs(drawn):
    for style in drawn["reserved"]:
        assert style.split == "reserved"
        assert voice_split(style.voice.voice) == "reserved"
        assert design_split(style.slides.design) == "reserved"
        assert narration_split(style.narration) == "reserved"
        if split_cursor_themes("reserved"):  # X11 themes need their Debian packages
            assert cursor_split(style.pointer.cursor.theme) == "reserved"


def test_every_axis_spans_its_range(drawn):
    training = drawn["training"]
    assert {s.slides.design for s in training} == set(split_designs("training"))
    assert {s.video.size for s in training} == set(FRAME_SIZES)
    assert {s.video.fps for s in training} == set(FRAME_RATES)
    assert {s.video.webcam_corner for s in training} == {*WEBCAM_CORNERS, None}
    assert {s.slides.text_position for s in training} == set(styles.TEXT_POSITIONS)
    assert {s.pointer.behaviour for s in training} == set(styles.POINTER_BEHAVIOURS)
    assert {s.narration for s in training} == set(split_narrations("training"))
    crfs = [s.video.crf for s in training]
    assert min(crfs) == styles.CRF_RANGE[0] and max(crfs) == styles.CRF_RANGE[1]
    sizes = [s.pointer.cursor.size for s in training]
    assert min(sizes) < 24 and max(sizes) > 72
    assert len({s.voice.voice for s in training}) >= 10
    tones = {SLIDE_DESIGNS[s.slides.design].tone for s in training}
    assert tones == {"dark", "light"}


def test_axes_are_drawn_independently(drawn):
    """Each axis's values spread across the others': no design, say, only ever comes with one
    frame size or one voice (which a shared draw would show as a near-one-to-one table)."""
    training = drawn["training"]
    for first, second in (
        (lambda s: s.slides.design, lambda s: s.video.size),
        (lambda s: s.slides.design, lambda s: s.voice.voice.split("+")[0]),
        (lambda s: s.pointer.cursor.shape, lambda s: SLIDE_DESIGNS[s.slides.design].tone),
    ):
        for value in {first(s) for s in training}:
            partners = {second(s) for s in training if first(s) == value}
            assert len(partners) >= 2, value


def test_factors_name_every_axis(drawn):
    factors = drawn["reserved"][0].factors()
    for key in (
        "split",
        "voice",
        "accent",
        "cursor_family",
        "cursor_size",
        "slide_design",
        "frame_size",
        "webcam",
        "narration",
    ):
        assert factors[key], key
    assert factors["split"] == "reserved"
    described = drawn["reserved"][0].describe()
    assert described["factors"] == factors and described["video"]["size"]


def test_draws_repeat_with_the_seed():
    first = draw_style(np.random.default_rng(3), "training")
    assert draw_style(np.random.default_rng(3), "training") == first


def test_a_pointer_scales_with_the_frame():
    look = draw_style(np.random.default_rng(5), "training").pointer
    assert look.at_height(1080).size == max(12, min(96, look.cursor.size))
    assert look.at_height(540).size <= look.at_height(1080).size


def test_an_unknown_split_is_named():
    with pytest.raises(ValueError, match="'held-out'"):
        draw_style(np.random.default_rng(0), "held-out")
