"""The `transcripts` asset: tables in DuckDB, incremental re-runs, videos without speech, logs."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import polars as pl
import pytest

from mednarratives_assets.asr.audio import Windowing, open_audio
from mednarratives_assets.asr.engines import AsrEngine, AsrResult, AsrSegment, AsrWord
from mednarratives_assets.asr.vocabulary import MedicalVocabulary
from mednarratives_assets.defs.resources import SpeechRecognizer
from mednarratives_assets.defs.transcripts import transcripts
from mednarratives_assets.defs.videos import videos
from mednarratives_assets.mp4 import write_mp4
from mednarratives_assets.stages.transcripts import (
    SEGMENTS_SCHEMA,
    TRANSCRIPTS_SCHEMA,
    WORDS_SCHEMA,
    TranscriptCache,
    transcribe_channel,
)
from mednarratives_assets.stages.videos import probe_channel
from mednarratives_assets.synthetic.speech import PiperNarrator
from mednarratives_assets.video_cache import StageCache
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
    assert "channel 'demo': 1 videos transcribed now, 1 from the cache" in log


def test_finished_rows_are_reused_and_a_new_term_list_corrects_again_without_asr(
    layout, narrator, tmp_path, monkeypatch
):
    folder = layout.channel_dir("demo")
    write_narrated_video(folder / "one.mp4", narrator, LECTURES["brain"])
    frame = probe_channel(layout.data_root, "demo")
    engine = CountingEngine(ScriptedEngine(["The hyper intense lesion on the axle image."]))
    before = len(TRANSCRIBED)
    corrected: list[str] = []
    correct = MedicalVocabulary.correct
    monkeypatch.setattr(
        MedicalVocabulary, "correct", lambda self, text: corrected.append(text) or correct(self, text)
    )

    def run(vocabulary: MedicalVocabulary):
        tables = StageCache.open(tmp_path / "tables", "transcripts", "demo", frame, vocabulary.fingerprint)
        asr = TranscriptCache(tmp_path / "asr")
        result = transcribe_channel(
            layout.data_root, "demo", frame, engine, asr, vocabulary, tables_cache=tables
        )
        return result.segments["corrected_text"].to_list(), tables

    segments, _ = run(MedicalVocabulary())
    assert segments == ["The hyperintense lesion on the axial image."]
    assert len(TRANSCRIBED) - before == 1 and len(corrected) == 1
    segments, tables = run(MedicalVocabulary())
    assert tables.reused == ["one"] and len(TRANSCRIBED) - before == 1 and len(corrected) == 1

    terms = tmp_path / "terms.txt"
    terms.write_text("lesion\n")  # without "hyperintense" there is nothing to join
    segments, tables = run(MedicalVocabulary(terms_file=terms))
    assert tables.computed == ["one"] and len(TRANSCRIBED) - before == 1 and len(corrected) == 2
    assert segments == ["The hyper intense lesion on the axial image."]


ENTRY = {"status": "ok", "reason": None, "audio_s": 1.0, "transcribe_s": 0.1, "segments": [], "words": []}


def test_a_damaged_cache_entry_is_transcribed_again(tmp_path):
    cache = TranscriptCache(tmp_path)
    cache.put("f", "abc", ENTRY)
    assert cache.get("f", "abc")["status"] == "ok"
    assert [p.name for p in (tmp_path / "f").iterdir()] == ["abc.json"]  # no temporary left
    entry = Path(tmp_path / "f" / "abc.json")
    for damage in (b"{not json", b"\xff\xfe", b"[1, 2]", b'{"format": "mednarratives-transcript/1"}'):
        entry.write_bytes(damage)
        assert cache.get("f", "abc") is None, damage
    assert cache.get("other", "abc") is None


@pytest.fixture
def one_video(layout) -> pl.DataFrame:
    """A channel `c` with one probed video (a tone, no speech: engines here are scripted)."""
    make_video(layout.channel_dir("c") / "a.mp4", seconds=2.0)
    return probe_channel(layout.data_root, "c")


def full_disk_under(root: Path, monkeypatch) -> None:
    """Every write of a file under `root` fails as on a full disk."""
    write_bytes = Path.write_bytes

    def failing(self: Path, data) -> int:
        if self.is_relative_to(root):
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return write_bytes(self, data)

    monkeypatch.setattr(Path, "write_bytes", failing)


def test_a_full_disk_stops_the_channel_instead_of_becoming_an_error_row(
    layout, one_video, tmp_path, monkeypatch
):
    cache_root = tmp_path / "cache"
    full_disk_under(cache_root, monkeypatch)
    with pytest.raises(OSError, match="No space left on device") as failure:
        transcribe_channel(
            layout.data_root, "c", one_video, ScriptedEngine(["A cyst."]), TranscriptCache(cache_root)
        )
    assert failure.value.errno == errno.ENOSPC and failure.value.filename.startswith(str(cache_root))
    assert [p for p in cache_root.rglob("*") if p.is_file()] == []  # the temporary is cleared


class FailingEngine(ScriptedEngine):
    def __init__(self, error: Exception):
        super().__init__([])
        self.error = error

    def transcribe(self, samples, progress) -> AsrResult:
        raise self.error


def test_a_machine_error_in_the_engine_raises_and_a_media_error_is_a_row(layout, one_video, tmp_path):
    cache = TranscriptCache(tmp_path / "cache")
    denied = PermissionError(errno.EACCES, "Permission denied", "/models/tiny.en/model.bin")
    with pytest.raises(PermissionError):
        transcribe_channel(layout.data_root, "c", one_video, FailingEngine(denied), cache)
    failed = transcribe_channel(
        layout.data_root, "c", one_video, FailingEngine(RuntimeError("decoder")), cache
    )
    assert failed.transcripts.select("status", "reason").row(0) == ("error", "transcription failed: decoder")


def test_a_video_that_no_longer_decodes_is_an_error_row(layout, one_video, tmp_path):
    (layout.channel_dir("c") / "a.mp4").write_bytes(b"\x00" * 4096)  # damaged after it was probed
    result = transcribe_channel(
        layout.data_root, "c", one_video, ScriptedEngine(["A cyst."]), TranscriptCache(tmp_path / "cache")
    )
    [row] = result.transcripts.iter_rows(named=True)
    assert row["status"] == "error" and "a.mp4: not a readable media file" in row["reason"]
    assert result.words.is_empty()


def test_a_full_disk_fails_the_step_naming_the_path_and_keeps_the_stored_rows(
    layout, resources, instance, narrator, monkeypatch
):
    folder = layout.channel_dir("disk")
    write_narrated_video(folder / "chest.mp4", narrator, LECTURES["chest"])
    assert materialize(layout, resources, instance, "disk").success
    before = query(layout, "FROM transcripts")
    write_narrated_video(folder / "brain.mp4", narrator, LECTURES["brain"])
    full_disk_under(layout.transcripts_cache_dir, monkeypatch)
    result = materialize(layout, resources, instance, "disk")
    assert not result.success
    message = step_failure(result)
    assert "No space left on device" in message and str(layout.transcripts_cache_dir) in message
    assert query(layout, "FROM transcripts").equals(before)


def test_long_tracks_are_transcribed_in_windows_on_the_tracks_clock(layout, tmp_path, monkeypatch):
    monkeypatch.setattr("mednarratives_assets.stages.transcripts.PROGRESS_EVERY_S", 1.0)
    make_video(layout.channel_dir("long") / "talk.mp4", seconds=20.0)
    frame = probe_channel(layout.data_root, "long")
    engine = ScriptedEngine(["One lesion.", "Two cysts."])  # the same two sentences in every window
    windowing = Windowing(window_s=8.0, search_s=2.0)
    log: list[str] = []
    result = transcribe_channel(
        layout.data_root,
        "long",
        frame,
        engine,
        TranscriptCache(tmp_path / "cache"),
        log=log.append,
        windowing=windowing,
    )
    starts = [w.start_s for w in open_audio(layout.channel_dir("long") / "talk.mp4").windows(windowing)]
    assert len(starts) == 3 and starts[0] == 0.0
    assert result.segments["start_s"].to_list() == pytest.approx([s + k for s in starts for k in (0, 1)])
    assert result.segments["segment_index"].to_list() == list(range(6))
    assert result.words["start_s"].is_sorted()
    assert result.transcripts.row(0, named=True)["audio_s"] == pytest.approx(20.0, abs=0.1)
    done = [float(line.split(": ")[1].split(" of ")[0]) for line in log if "s of audio transcribed" in line]
    assert done == sorted(done) and done[-1] > 12.5  # seconds of the whole track
