"""One lecture in reserved styles (a voice, cursor theme and slide design no model or setting was
chosen with) through the whole pipeline, scored against its truth.

The bars are lower than the benchmarks' targets (docs/generalization.md gives the figures). They
still fail when a stage loses the lecture: a chunker that misses its slides, a tracer following
something else, a transcript of the wrong audio, no pairs.
"""

from __future__ import annotations

import math

import duckdb
import pytest

from mednarratives_assets import cli
from mednarratives_assets.evaluation.ground_truth import load_truth
from mednarratives_assets.evaluation.stage_scores import ChunkScore, NarrativeScore
from mednarratives_assets.evaluation.transcript_scores import TimedWord, score_words
from mednarratives_assets.settings import DataLayout
from mednarratives_assets.synthetic.styles import cursor_split, design_split, split_cursor_themes, voice_split


@pytest.fixture(scope="module")
def reserved_lecture(tmp_path_factory, default_frame_classifier, default_cursor_detector, monkeypatch_module):
    """The lecture's truth and the tables the pipeline made of it, read from its DuckDB file."""
    root = tmp_path_factory.mktemp("reserved-lecture") / "data"
    layout = DataLayout.at(root)
    # CI's models, saved where the assets look, so the demo trains neither
    layout.frame_classifier_path.parent.mkdir(parents=True, exist_ok=True)
    monkeypatch_module.setenv("MEDNARRATIVES_DATA_ROOT", str(root))
    monkeypatch_module.delenv("MEDNARRATIVES_DUCKDB", raising=False)
    monkeypatch_module.delenv("DAGSTER_HOME", raising=False)
    arguments = ["--styles", "reserved", "--seed", "3", "--channels", "1", "--videos-per-channel", "1"]
    assert cli.main(["demo", *arguments, "--seconds", "40", "--workers", "1"]) == 0
    [truth_path] = layout.ground_truth_dir.glob("*/*.json")
    with duckdb.connect(str(layout.duckdb_path), read_only=True) as con:
        tables = {
            name: con.sql(f"FROM {name}").pl().to_dicts()
            for name in ("stable_chunks", "cursor_traces", "transcript_words", "boxes", "aligned_pairs")
        }
    return load_truth(truth_path), tables


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_the_lecture_is_in_reserved_styles(reserved_lecture):
    truth, _ = reserved_lecture
    factors = truth["style"]["factors"]
    assert factors["split"] == "reserved"
    assert voice_split(factors["voice"]) == "reserved"
    assert design_split(factors["slide_design"]) == "reserved"
    if split_cursor_themes("reserved"):
        assert cursor_split(factors["cursor_theme"]) == "reserved"


def test_its_slides_are_chunked_and_the_medical_ones_found(reserved_lecture):
    truth, tables = reserved_lecture
    score = ChunkScore()
    score.add(tables["stable_chunks"], truth)
    assert score.boundary_f1 >= 0.8, score
    assert score.medical_recall >= 0.5 and score.medical_precision >= 0.8, score


def test_its_transcript_follows_the_narrator(reserved_lecture):
    truth, tables = reserved_lecture
    said = [TimedWord(w["word"], w["start_s"]) for w in truth["words"]]
    heard = [TimedWord(w["word"], w["start_s"]) for w in tables["transcript_words"]]
    score = score_words(said, heard)
    assert score.wer <= 0.45, score.wer
    assert sorted(score.start_errors_s)[len(score.start_errors_s) // 2] <= 0.15


def test_its_trace_points_sit_on_the_pointer(reserved_lecture):
    truth, tables = reserved_lecture
    cursor, scale = truth["cursor"], 720 / truth["height"]
    errors = []
    for point in tables["cursor_traces"]:
        frame = min(round(point["t_s"] * truth["fps"]), len(cursor["visible"]) - 1)
        if cursor["visible"][frame]:
            errors.append(
                math.hypot(point["x_px"] - cursor["x"][frame], point["y_px"] - cursor["y"][frame]) * scale
            )
        else:
            errors.append(math.inf)  # a point where no pointer is
    assert errors, "no trace points"
    # Not the benchmarks' 6 px: on an unseen theme the hotspot may sit a few pixels off its tip
    # (docs/generalization.md), but the trace must follow the pointer and nothing else.
    assert sum(e <= 12 for e in errors) / len(errors) >= 0.9, sorted(errors)


def test_its_medical_slides_become_pairs_with_the_narrated_words(reserved_lecture):
    truth, tables = reserved_lecture
    score = NarrativeScore()
    chunks = [row for row in tables["stable_chunks"] if row["is_medical"]]
    pairs = {row["chunk_index"]: row for row in tables["aligned_pairs"]}
    score.add(truth, chunks, tables["boxes"], pairs)
    assert score.paired_share >= 0.5, score
    assert score.caption_recall >= 0.5, score
