"""The `transcripts` asset: tables in DuckDB, incremental re-runs, videos without speech, logs."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import polars as pl
import pytest

from mednarratives_assets.asr.engines import AsrEngine, AsrResult, AsrSegment, AsrWord
from mednarratives_assets.asr.vocabulary import MedicalVocabulary
from mednarratives_assets.defs.resources import SpeechRecognizer
from mednarratives_assets.defs.transcripts import transcripts
from mednarratives_assets.defs.videos import videos
from mednarratives_assets.demo.speech import PiperNarrator
from mednarratives_assets.mp4 import write_mp4
from mednarratives_assets.stages.transcripts import (
    SEGMENTS_SCHEMA,
    TRANSCRIPTS_SCHEMA,
    WORDS_SCHEMA,
    TranscriptCache,
    transcribe_channel,
)
from mednarratives_assets.stages.videos import probe_channel
from mednarratives_tests.asr_fixtures import write_narrated_video
from mednarratives_tests.conftest import make_video, step_failure

LECTURES = {
    "chest": ["This chest radiograph shows a right lower lobe consolidation."],
    "brain": ["The axial FLAIR image shows a hyperintense lesion near the ventricle."],
    "liver": ["A hypodense mass sits in the left lobe of the liver."],
}
TRANSCRIBED: list[int] = []  # one entry per engine call, across the counting engine's lifetimes


class CountingEngine:
    """The real engine, counting its calls."""

    def __init__(self, engine: AsrEngine):
        self.engine = engine
        self.name = engine.name
        self.fingerprint = engine.fingerprint

    def transcribe(self, samples, progress):
        TRANSCRIBED.append(samples.size)
        return self.engine.transcribe(samples, progress)


class CountingRecognizer(SpeechRecognizer):
    def build(self) -> AsrEngine:
        return CountingEngine(super().build())


@pytest.fixture(scope="module")
def narrator() -> PiperNarrator:
    return PiperNarrator()


def materialize(layout, resources, instance, channel: str, asr: SpeechRecognizer | None = None):
    instance.add_dynamic_partitions("channel", [channel])
    return dg.materialize(
        [videos, transcripts],
        partition_key=channel,
        resources=resources | {"asr": asr or CountingRecognizer()},
        instance=instance,
        raise_on_error=False,
    )


def query(layout, sql: str) -> pl.DataFrame:
    with duckdb.connect(str(layout.duckdb_path), read_only=True) as con:
        return con.sql(sql).pl()


def test_tables_land_in_duckdb_and_only_new_or_changed_videos_are_transcribed(
    layout, resources, instance, narrator
):
    folder = layout.channel_dir("radiology")
    for name in ("chest", "brain"):
        write_narrated_video(folder / f"{name}.mp4", narrator, LECTURES[name])
    TRANSCRIBED.clear()
    assert materialize(layout, resources, instance, "radiology").success
    assert len(TRANSCRIBED) == 2

    words = query(layout, "FROM transcript_words ORDER BY video_id, word_index")
    assert set(WORDS_SCHEMA) == set(words.columns)
    brain = words.filter(pl.col("video_id") == "brain")
    assert "hyperintense" in " ".join(brain["word"]).lower()
    assert brain["word_index"].to_list() == list(range(brain.height))
    assert (brain["start_s"].diff().drop_nulls() >= 0).all() and (brain["end_s"] >= brain["start_s"]).all()
    segments = query(layout, "FROM transcript_segments")
    assert set(SEGMENTS_SCHEMA) == set(segments.columns) and segments.height == 2
    table = query(layout, "FROM transcripts ORDER BY video_id")
    assert set(TRANSCRIPTS_SCHEMA) == set(table.columns)
    assert table["status"].to_list() == ["ok", "ok"] and not table["from_cache"].any()

    # Nothing new: nothing transcribed, same rows.
    assert materialize(layout, resources, instance, "radiology").success
    assert len(TRANSCRIBED) == 2
    assert query(layout, "FROM transcripts")["from_cache"].all()
    assert query(layout, "SELECT count(*) AS n FROM transcript_words")["n"][0] == words.height

    # A new video and a changed one: exactly those two are transcribed.
    write_narrated_video(folder / "liver.mp4", narrator, LECTURES["liver"])
    write_narrated_video(folder / "chest.mp4", narrator, ["The liver is normal.", *LECTURES["chest"]])
    assert materialize(layout, resources, instance, "radiology").success
    assert len(TRANSCRIBED) == 4
    table = query(layout, "FROM transcripts ORDER BY video_id")
    assert table.select("video_id", "from_cache").rows() == [
        ("brain", True),
        ("chest", False),
        ("liver", False),
    ]
    chest = query(layout, "SELECT string_agg(word, ' ') AS t FROM transcript_words WHERE video_id = 'chest'")
    assert "liver" in chest["t"][0].lower()


def test_videos_without_speech_get_a_reason_and_the_others_are_transcribed(
    layout, resources, instance, narrator
):
    folder = layout.channel_dir("mixed")
    write_narrated_video(folder / "talk.mp4", narrator, LECTURES["chest"])
    make_video(folder / "mute.mp4", audio=False)
    write_mp4(
        folder / "silent.mp4", (np.zeros((96, 160, 3), np.uint8) for _ in range(10)), audio=np.zeros(16_000)
    )
    make_video(folder / "tone.mp4", seconds=2.0)  # sound, but no speech
    (folder / "broken.mp4").write_bytes(b"\x00" * 100)
    result = materialize(layout, resources, instance, "mixed")
    assert result.success
    table = query(layout, "FROM transcripts ORDER BY video_id")
    rows = {r["video_id"]: (r["status"], r["reason"], r["n_words"]) for r in table.iter_rows(named=True)}
    assert rows["mute"] == ("no_speech", "no audio stream", 0)
    assert rows["silent"][0] == "no_speech" and rows["silent"][1].startswith("silent audio")
    assert rows["tone"][:2] == ("no_speech", "no speech detected in the audio")
    assert rows["broken"][0] == "error" and rows["broken"][1].startswith("video unreadable: ")
    assert rows["talk"][0] == "ok" and rows["talk"][2] >= 8
    assert set(query(layout, "FROM transcript_words")["video_id"]) == {"talk"}
    [check] = [c for c in result.get_asset_check_evaluations() if c.asset_key.path == ["transcripts"]]
    assert check.check_name == "all_videos_transcribed" and not check.passed
    assert check.metadata["n_errors"].value == 1


def test_a_wrong_asr_setting_fails_the_run_and_names_it(layout, resources, instance, narrator):
    write_narrated_video(layout.channel_dir("c") / "a.mp4", narrator, LECTURES["chest"])
    result = materialize(layout, resources, instance, "c", asr=SpeechRecognizer(compute_type="int4"))
    assert not result.success
    error = step_failure(result)
    assert "ASR resource 'asr': compute_type 'int4' is not one of" in error


def test_whisperx_without_an_alignment_model_fails_the_run_saying_how_to_fix_it(
    layout, resources, instance, narrator, tmp_path, monkeypatch
):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    write_narrated_video(layout.channel_dir("c") / "a.mp4", narrator, LECTURES["chest"])
    TRANSCRIBED.clear()
    result = materialize(layout, resources, instance, "c", asr=CountingRecognizer(engine="whisperx"))
    assert not result.success and TRANSCRIBED == []
    message = step_failure(result)
    assert "ASR resource 'asr': no alignment model is configured or cached" in message
    assert "set align_model to a local Hugging Face wav2vec2 CTC model folder" in message


class ScriptedEngine:
    """Returns fixed segments, to test what the stage does with ASR output."""

    name = "scripted"
    fingerprint = "scripted-1"

    def __init__(self, sentences: list[str]):
        self.sentences = sentences

    def transcribe(self, samples, progress) -> AsrResult:
        segments, words = [], []
        for i, sentence in enumerate(self.sentences):
            segments.append(AsrSegment(i, float(i), i + 0.9, sentence))
            words += [
                AsrWord(w, i + k * 0.1, i + k * 0.1 + 0.05, 0.9, i) for k, w in enumerate(sentence.split())
            ]
            progress(2.0 * (i + 1))
        return AsrResult(segments, words)


def test_segments_keep_the_heard_text_and_the_corrections(layout, narrator, tmp_path, monkeypatch):
    monkeypatch.setattr("mednarratives_assets.stages.transcripts.PROGRESS_EVERY_S", 1.0)
    folder = layout.channel_dir("demo")
    write_narrated_video(folder / "one.mp4", narrator, LECTURES["brain"])
    shutil.copy(folder / "one.mp4", folder / "two.mp4")
    frame = probe_channel(layout.data_root, "demo")
    engine = ScriptedEngine(["The hyper intense lesion on the axle image.", "A benign cyst."])
    log: list[str] = []
    result = transcribe_channel(
        layout.data_root,
        "demo",
        frame,
        engine,
        TranscriptCache(tmp_path / "cache"),
        MedicalVocabulary(),
        log.append,
    )
    first = result.segments.filter(pl.col("video_id") == "one").row(0, named=True)
    assert first["text"] == "The hyper intense lesion on the axle image."
    assert first["corrected_text"] == "The hyperintense lesion on the axial image."
    assert first["corrections"] == [
        {"heard": "hyper intense", "corrected": "hyperintense", "rule": "join"},
        {"heard": "axle", "corrected": "axial", "rule": "map"},
    ]
    assert result.transcripts["n_corrections"].to_list() == [2, 2]
    # progress: video i of n, and seconds of audio done
    assert any(line.startswith("video 1 of 2 (one): 2 of ") and "s of audio" in line for line in log)
    assert "video 2 of 2 (two): 11 words, 2 corrections, 5 s of audio, from the cache" in log


def test_a_damaged_cache_entry_is_transcribed_again(tmp_path):
    cache = TranscriptCache(tmp_path)
    cache.put("f", "abc", {"status": "ok"})
    assert cache.get("f", "abc")["status"] == "ok"
    Path(tmp_path / "f" / "abc.json").write_text("{not json")
    assert cache.get("f", "abc") is None
    assert cache.get("other", "abc") is None
