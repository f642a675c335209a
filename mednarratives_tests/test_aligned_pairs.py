from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import polars as pl
import pytest

from mednarratives_assets.asr.vocabulary import MedicalVocabulary
from mednarratives_assets.domains import DOMAINS
from mednarratives_assets.stages.aligned_pairs import (
    ALIGNED_PAIRS_SCHEMA,
    PairSettings,
    infer_domain,
    medical_sentences,
    pair_channel,
    pair_picture,
    roi_text,
)
from mednarratives_assets.synthetic.pointers import CursorStyle, paste_sprite, render_sprite
from mednarratives_assets.tables import pair_id
from mednarratives_tests.narration_fixtures import REGION, box, keyframe, narrate, narrated_channel

GREY = np.dstack([np.linspace(0, 255, 64 * 64, dtype=np.uint8).reshape(64, 64)] * 3)
PINK = np.full((64, 64, 3), (200, 120, 230), np.uint8)  # BGR: an H&E-like purple-pink


@pytest.mark.parametrize(
    ("text", "image", "domain"),
    [
        ("Here is a CT scan of the head with a hypodense focus.", GREY, "CT"),
        ("An axial T2 weighted MRI of the brain.", GREY, "MRI"),
        ("A frontal chest radiograph.", GREY, "X-ray"),
        ("The x -ray of the chest.", GREY, "X-ray"),  # as Whisper writes it
        ("This fundus photograph shows the optic disc.", PINK, "ophthalmology"),
        ("A biopsy, stained with H&E, then compared with the MRI.", PINK, "histopathology"),
        ("A biopsy, stained with H&E, then compared with the MRI.", GREY, "MRI"),  # the image decides
        ("The mammogram shows calcifications in the breast.", GREY, "mammography"),
        ("A panoramic view of the teeth.", GREY, "dental"),
        ("Remember this appearance for the exam.", GREY, "other"),
    ],
)
def test_the_domain_comes_from_keywords_and_the_image_breaks_ties(text, image, domain):
    found, votes = infer_domain(text, image)
    assert found == domain and found in DOMAINS
    assert (votes == {}) == (domain == "other")


def test_medical_text_keeps_the_sentences_with_a_medical_term():
    terms = MedicalVocabulary().terms
    text = "Let us begin. Notice this hypodense lesion in the liver. That is all for today."
    assert medical_sentences(text, terms) == "Notice this hypodense lesion in the liver."


def test_roi_text_keeps_the_phrases_that_refer_to_the_spot():
    phrases = ["an MRI of the abdomen", "Notice this rounded focus.", "", "There is a bright area here."]
    assert roi_text(phrases) == "Notice this rounded focus.; There is a bright area here."


def channel_pairs(root: Path, tables: dict, log=pytest.fail, detector=None):
    return pair_channel(
        root,
        Path("pairs/ch"),
        tables["stable_chunks"],
        narrate(tables),
        box(root, tables),
        tables["cursor_traces"],
        MedicalVocabulary(),
        PairSettings(),
        detector,
        log,
    )


def test_each_medical_chunk_gives_a_pair_with_its_crop_and_texts(tmp_path):
    tables = narrated_channel(tmp_path).tables
    result = channel_pairs(tmp_path, tables)
    pairs = result.pairs
    assert pairs.columns == list(ALIGNED_PAIRS_SCHEMA) and pairs.height == 1
    pair = pairs.row(0, named=True)
    assert (
        pair["pair_id"] == pair_id("ch", "a", 1) and pair["image_path"] == f"pairs/ch/{pair['pair_id']}.png"
    )
    crop = cv2.imread(str(tmp_path / pair["image_path"]))
    x, y, w, h = REGION
    assert np.array_equal(crop, keyframe()[y : y + h, x : x + w])
    assert (pair["image_width"], pair["image_height"]) == (w, h)
    assert pair["domain"] == "CT" and pair["n_boxes"] == 3 and pair["n_trace_points"] > 50
    assert pair["roi_text"] == "Notice this hyperdense rounded focus.; There is this bright area below."
    assert pair["medical_text"] == "Here is a CT scan of the head. Notice this hyperdense rounded focus."
    assert pair["corrected_caption"].startswith("Here is a CT scan of the head.")
    assert pair_picture(tmp_path, pair).shape[1] == 240


def test_the_same_image_in_another_video_gives_no_second_pair_and_silence_gives_none(tmp_path):
    tables = narrated_channel(tmp_path, video_ids=("a", "b", "c")).tables
    silent = tables["transcript_words"]["video_id"] != "c"
    tables["transcript_words"] = tables["transcript_words"].filter(silent)
    result = channel_pairs(tmp_path, tables)
    assert result.pairs["video_id"].to_list() == ["a"]
    assert result.skipped.to_dicts() == [
        {"video_id": "b", "chunk_index": 1, "reason": "same image as a chunk 1"},
        {"video_id": "c", "chunk_index": 1, "reason": "nothing was said"},
    ]
    assert result.pairs["pair_id"].is_unique().all()


def test_an_unreadable_keyframe_is_named_and_the_other_pairs_are_made(tmp_path):
    tables = narrated_channel(tmp_path, video_ids=("a", "b")).tables
    broken = tmp_path / "keyframes" / "ch" / "broken.png"
    broken.write_bytes(b"")
    tables["stable_chunks"] = tables["stable_chunks"].with_columns(
        keyframe_path=pl.when(pl.col("video_id") == "a")
        .then(pl.lit("keyframes/ch/broken.png"))
        .otherwise(pl.col("keyframe_path"))
    )
    messages: list[str] = []
    result = channel_pairs(tmp_path, tables, log=messages.append)
    assert result.pairs["video_id"].to_list() == ["b"]
    assert messages == ["a chunk 1: cannot read keyframe keyframes/ch/broken.png"]


def test_a_rerun_replaces_the_crops_and_a_failed_one_keeps_them(tmp_path, monkeypatch):
    tables = narrated_channel(tmp_path).tables
    channel_pairs(tmp_path, tables)
    stale = tmp_path / "pairs" / "ch" / "stale.png"
    stale.write_bytes(b"old")
    stored = channel_pairs(tmp_path, tables).pairs["image_path"].to_list()
    assert not stale.exists() and (tmp_path / stored[0]).is_file()

    def broken_encoder(*_args, **_kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(cv2, "imencode", broken_encoder)
    with pytest.raises(RuntimeError, match="disk full"):
        channel_pairs(tmp_path, tables)
    assert (tmp_path / stored[0]).is_file() and not (tmp_path / "pairs" / "ch.partial").exists()


def test_a_pointer_left_in_the_keyframe_is_painted_out_where_the_trace_went(
    tmp_path, default_cursor_detector
):
    """At 720p: the pointer rests where the trace rested; a second, identical one lies where the
    trace never went, like a mark on an ultrasound screen, and stays."""
    detector = default_cursor_detector
    tables = narrated_channel(tmp_path).tables
    doubled = ["image_x", "image_y", "image_w", "image_h"]
    tables["stable_chunks"] = tables["stable_chunks"].with_columns(pl.col(doubled) * 2)
    tables["cursor_traces"] = tables["cursor_traces"].with_columns(pl.col("x_px", "y_px") * 2)
    clean = cv2.resize(keyframe(), (1280, 720))
    rest = (660, 160)  # where the trace rests from 2.6 to 5 s, doubled
    mark = (520, 470)  # 64 px from the nearest trace point
    with_pointers = clean.copy()
    sprite = render_sprite(CursorStyle("arrow", "dark", 32))
    for hotspot in (rest, mark):
        paste_sprite(with_pointers, sprite, *hotspot)
    cv2.imwrite(str(tmp_path / "keyframes" / "ch" / "medical.png"), with_pointers)
    x0, y0 = 2 * REGION[0], 2 * REGION[1]

    def error_at(pair: dict, hotspot: tuple[int, int]) -> float:
        image = cv2.imread(str(tmp_path / pair["image_path"])).astype(np.int16)
        x, y = hotspot[0] - x0, hotspot[1] - y0
        reference = clean[y0 : y0 + image.shape[0], x0 : x0 + image.shape[1]].astype(np.int16)
        return float(np.abs(image - reference)[y : y + 40, x : x + 24].mean())

    kept = channel_pairs(tmp_path, tables).pairs.row(0, named=True)
    assert kept["n_pointers_removed"] == 0 and error_at(kept, rest) > 8
    cleaned = channel_pairs(tmp_path, tables, detector=detector).pairs.row(0, named=True)
    assert cleaned["n_pointers_removed"] == 1
    assert error_at(cleaned, rest) < 2 and error_at(cleaned, mark) > 8


def test_a_wrong_duplicate_distance_is_named():
    with pytest.raises(ValueError, match="duplicate_distance=64 must be between 0 and 32 bits"):
        PairSettings(duplicate_distance=64).validated()
