"""Stage `transcripts`: word-timed speech of every video of a channel, with medical corrections.

Three tables come out: `transcripts` (one row per video: status, reason, counts), `transcript_words`
and `transcript_segments`. ASR output is cached as JSON per engine fingerprint and video sha256,
so re-materializing a channel transcribes only videos that are new or changed; the vocabulary
corrections are cheap and re-applied every time, so editing the term list needs no re-run of ASR.

Memory follows the window, not the video: the audio is decoded and transcribed in windows of about
ten minutes (`asr.audio.Windowing`), whose word times are moved to the track's clock. A video with
bad media gets an error row; an OSError that is not the media's (disk full, permissions) is the
machine's problem and propagates, so that the step fails instead of storing a wrong row.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl

from mednarratives_assets.asr.audio import NoSpeechAudio, Windowing, open_audio
from mednarratives_assets.asr.engines import AsrEngine, AsrResult, merge_windows
from mednarratives_assets.asr.vocabulary import MedicalVocabulary
from mednarratives_assets.atomic_files import write_file
from mednarratives_assets.video_cache import Frames, StageCache
from mednarratives_assets.video_frames import is_video_fault

CACHE_FORMAT = "mednarratives-transcript/1"
PROGRESS_EVERY_S = 30.0  # log a long video's progress every this many seconds of audio

TRANSCRIPTS_SCHEMA: dict[str, pl.DataType] = {
    "channel": pl.Utf8(),
    "video_id": pl.Utf8(),
    "sha256": pl.Utf8(),
    "engine": pl.Utf8(),
    "engine_fingerprint": pl.Utf8(),
    "status": pl.Utf8(),
    "reason": pl.Utf8(),
    "audio_s": pl.Float64(),
    "n_segments": pl.Int32(),
    "n_words": pl.Int32(),
    "n_corrections": pl.Int32(),
    "transcribe_s": pl.Float64(),
    "from_cache": pl.Boolean(),
    "transcribed_at": pl.Datetime("us"),
}
WORDS_SCHEMA: dict[str, pl.DataType] = {
    "channel": pl.Utf8(),
    "video_id": pl.Utf8(),
    "word_index": pl.Int32(),
    "word": pl.Utf8(),
    "start_s": pl.Float64(),
    "end_s": pl.Float64(),
    "probability": pl.Float64(),
    "segment_index": pl.Int32(),
}
CORRECTION_TYPE = pl.Struct({"heard": pl.Utf8(), "corrected": pl.Utf8(), "rule": pl.Utf8()})
SEGMENTS_SCHEMA: dict[str, pl.DataType] = {
    "channel": pl.Utf8(),
    "video_id": pl.Utf8(),
    "segment_index": pl.Int32(),
    "start_s": pl.Float64(),
    "end_s": pl.Float64(),
    "text": pl.Utf8(),
    "corrected_text": pl.Utf8(),
    "corrections": pl.List(CORRECTION_TYPE),
}


@dataclass(frozen=True)
class ChannelTranscripts:
    transcripts: pl.DataFrame
    words: pl.DataFrame
    segments: pl.DataFrame


_ENTRY_KEYS = ("status", "reason", "audio_s", "transcribe_s", "segments", "words")


class TranscriptCache:
    """`<root>/<engine fingerprint>/<sha256>.json`: one engine's output for one video's content."""

    def __init__(self, root: Path):
        self.root = root

    def _path(self, fingerprint: str, sha256: str) -> Path:
        return self.root / fingerprint / f"{sha256}.json"

    def get(self, fingerprint: str, sha256: str) -> dict | None:
        """The entry, or None when there is none or it is damaged (then the video is transcribed
        again). A file that cannot be read for another reason (permissions, I/O) raises."""
        path = self._path(fingerprint, sha256)
        try:
            entry = json.loads(path.read_bytes().decode("utf-8"))
        except (FileNotFoundError, NotADirectoryError, UnicodeDecodeError, json.JSONDecodeError):
            return None
        if not isinstance(entry, dict) or entry.get("format") != CACHE_FORMAT:
            return None
        return entry if all(key in entry for key in _ENTRY_KEYS) else None

    def put(self, fingerprint: str, sha256: str, entry: dict) -> None:
        """Store the entry atomically: a reader never sees half of one, and a failed write (a full
        disk) leaves no temporary behind and raises."""
        write_file(self._path(fingerprint, sha256), json.dumps(entry | {"format": CACHE_FORMAT}))


def _transcribe_video(
    path: Path, engine: AsrEngine, progress: Callable[[float, float | None], None], windowing: Windowing
) -> dict:
    """A cache entry for one video: status ok with segments and words, or no_speech with a reason.

    The audio is decoded and transcribed one window at a time; progress reports seconds of the
    whole track done, against its length as the container states it."""
    started = time.perf_counter()
    try:
        track = open_audio(path)
        parts = []
        for window in track.windows(windowing):
            result = engine.transcribe(
                window.samples,
                lambda done_s, offset_s=window.start_s: progress(offset_s + done_s, track.duration_s),
            )
            parts.append((window.start_s, result))
            del window, result  # let the window's samples go before the next is decoded
    except NoSpeechAudio as exc:
        audio_s, result, reason = 0.0, AsrResult([], []), str(exc)
    else:
        audio_s = track.decoded_s
        result = merge_windows(parts)
        reason = None if result.words else "no speech detected in the audio"
    return {
        "status": "no_speech" if reason else "ok",
        "reason": reason,
        "audio_s": audio_s,
        "transcribe_s": time.perf_counter() - started,
        "segments": [asdict(s) for s in result.segments],
        "words": [asdict(w) for w in result.words],
    }


def is_media_error(exc: Exception) -> bool:
    """Whether a failure is the video's (bad or unsupported media) rather than the machine's.

    The decoders' errors are the media's (`is_video_fault`, PyAV's first, even where they also
    subclass OSError), and so is the engine's ValueError or RuntimeError; any other OSError (no
    space, permission denied, I/O) is the machine's."""
    if is_video_fault(exc):
        return True
    return isinstance(exc, (ValueError, RuntimeError)) and not isinstance(exc, OSError)


def _progress_logger(log: Callable[[str], None], prefix: str) -> Callable[[float, float | None], None]:
    last_logged = [0.0]

    def progress(done_s: float, total_s: float | None) -> None:
        if done_s - last_logged[0] >= PROGRESS_EVERY_S and (total_s is None or done_s < total_s):
            last_logged[0] = done_s
            of_total = f" of {total_s:.0f}" if total_s is not None else ""
            log(f"{prefix}: {done_s:.0f}{of_total} s of audio transcribed")

    return progress


_VIDEO_FIELDS = ("status", "reason", "audio_s", "transcribe_s", "n_segments", "n_words", "n_corrections")


def _video_tables(channel: str, video_id: str, entry: dict, vocabulary: MedicalVocabulary | None) -> Frames:
    """One video's rows of the three tables from its ASR output, with the vocabulary's corrections."""
    key = {"channel": channel, "video_id": video_id}
    words = [key | {"word_index": k} | word for k, word in enumerate(entry["words"])]
    segments = []
    for segment in entry["segments"]:
        corrected, corrections = vocabulary.correct(segment["text"]) if vocabulary else (segment["text"], [])
        segments.append(
            key | segment | {"corrected_text": corrected, "corrections": [asdict(c) for c in corrections]}
        )
    video = {name: entry.get(name) for name in ("status", "reason", "audio_s", "transcribe_s")} | {
        "n_segments": len(segments),
        "n_words": len(words),
        "n_corrections": sum(len(s["corrections"]) for s in segments),
    }
    return {
        "video": pl.DataFrame([video], schema={name: TRANSCRIPTS_SCHEMA[name] for name in _VIDEO_FIELDS}),
        "words": pl.DataFrame(words, schema=WORDS_SCHEMA),
        "segments": pl.DataFrame(segments, schema=SEGMENTS_SCHEMA),
    }


def transcribe_channel(
    data_root: Path,
    channel: str,
    videos: pl.DataFrame,
    engine: AsrEngine,
    cache: TranscriptCache,
    vocabulary: MedicalVocabulary | None = None,
    log: Callable[[str], None] = lambda _msg: None,
    windowing: Windowing | None = None,
    tables_cache: StageCache | None = None,
) -> ChannelTranscripts:
    """Transcribe the channel's `videos` rows (those with status ok); others get an error row, as do
    videos whose media fails to decode. An OSError of the machine's (see `is_media_error`) raises.

    windowing: how long tracks are cut for transcription (default: `Windowing()`, 10 minutes).
    tables_cache: the videos' finished rows, corrections applied, by engine and vocabulary (keyed
    so by the caller); a hit skips even reading the ASR output and correcting it."""
    windowing = (windowing or Windowing()).validated()
    tables_cache = tables_cache or StageCache.off()
    videos = videos.sort("video_id")
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    rows = []
    words, segments = [pl.DataFrame(schema=WORDS_SCHEMA)], [pl.DataFrame(schema=SEGMENTS_SCHEMA)]
    n = videos.height
    log(f"channel {channel!r}: {n} videos to transcribe with {engine.name}")
    for i, video in enumerate(videos.iter_rows(named=True), 1):
        prefix = f"video {i} of {n} ({video['video_id']})"
        row = dict.fromkeys(TRANSCRIPTS_SCHEMA) | {
            "channel": channel,
            "video_id": video["video_id"],
            "sha256": video["sha256"],
            "engine": engine.name,
            "engine_fingerprint": engine.fingerprint,
            "transcribed_at": now,
            "n_segments": 0,
            "n_words": 0,
            "n_corrections": 0,
        }
        rows.append(row)
        if video["status"] != "ok":
            row.update(status="error", reason=f"video unreadable: {video['error']}")
            log(f"{prefix}: skipped, {row['reason']}")
            continue
        transcribed_now = []

        def transcribed(
            video: dict = video, prefix: str = prefix, transcribed_now: list = transcribed_now
        ) -> Frames:
            entry = cache.get(engine.fingerprint, video["sha256"])
            if entry is None:
                entry = _transcribe_video(
                    data_root / video["path"], engine, _progress_logger(log, prefix), windowing
                )
                cache.put(engine.fingerprint, video["sha256"], entry)
                transcribed_now.append(True)
            return _video_tables(channel, video["video_id"], entry, vocabulary)

        try:
            frames, _ = tables_cache.cached(
                video["video_id"], {"engine": engine.fingerprint}, ("video", "words", "segments"), transcribed
            )
        except Exception as exc:
            if not is_media_error(exc):
                raise
            row.update(status="error", reason=f"transcription failed: {exc}")
            log(f"{prefix}: {row['reason']}")
            continue
        row.update(frames["video"].row(0, named=True), from_cache=not transcribed_now)
        words.append(frames["words"])
        segments.append(frames["segments"])
        if transcribed_now:  # reused videos are counted in one line: a log line is an event to store
            log(
                f"{prefix}: {row['n_words']} words, {row['n_corrections']} corrections, "
                f"{row['audio_s']:.0f} s of audio in {row['transcribe_s']:.1f} s"
                + (f" ({row['reason']})" if row["reason"] else "")
            )
    table = pl.DataFrame(rows, schema=TRANSCRIPTS_SCHEMA)
    n_now, n_cached = (table.filter(pl.col("from_cache") == flag).height for flag in (False, True))
    log(f"channel {channel!r}: {n_now} videos transcribed now, {n_cached} from the cache")
    return ChannelTranscripts(transcripts=table, words=pl.concat(words), segments=pl.concat(segments))
