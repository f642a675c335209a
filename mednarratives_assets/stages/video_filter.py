"""Stage `video_filter`: which videos of a channel are narrated medical lectures, and why the others are not.

A video gives pairs only when a lecturer talks over medical images. Three measures, taken from the
tables before pairing, tell the rest apart:
- speech: no words at all (a silent or music-only video, or one that could not be transcribed);
  too little speech (`min_speech_s`) or too few words (`min_words`): a teaser, an intro or a clip
  over which Whisper heard a few stray words;
- medical chunks (`min_medical_chunks`): a lecture that never shows a medical image long enough to
  point at it.

Every video of the channel gets one row: kept, or the rule it breaks first and a sentence per rule
broken with the measured value and the threshold. `aligned_pairs` pairs the kept videos only.
The measures are sums over a video's rows, so the whole channel costs milliseconds and needs no
per-video cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from mednarratives_assets.stage_settings import check_settings, setting
from mednarratives_assets.tables import medical_chunks

# The rules in the order they are checked; `filtered_by` names the first one a video breaks.
RULES = ("no_speech", "too_little_speech", "too_few_words", "too_few_medical_chunks")
VIDEO_FILTER_SCHEMA = {
    "channel": pl.Utf8,
    "video_id": pl.Utf8,
    "kept": pl.Boolean,
    "filtered_by": pl.Utf8,
    "reason": pl.Utf8,
    "duration_s": pl.Float64,
    "speech_s": pl.Float64,
    "n_words": pl.Int32,
    "n_medical_chunks": pl.Int32,
}


@dataclass(frozen=True)
class VideoFilterSettings:
    min_speech_s: float = setting(
        20.0,
        "Seconds of speech (summed sentence spans) a video needs: a lecturer explaining even one image "
        "talks for longer; a teaser, an intro or music with a few stray words does not.",
        ge=0,
        le=3600,
        unit="seconds",
    )
    min_words: int = setting(
        40,
        "Words a video needs: 20 s at a slow lecturing pace of 2 words a second; Whisper's stray "
        "words over music or silence ('Thank you.') stay far below.",
        ge=0,
        le=100_000,
    )
    min_medical_chunks: int = setting(
        1,
        "Medical chunks (a medical image with a known region, repeats within the video not counted) "
        "a video needs: each one is a pair, and one explained image is worth keeping.",
        ge=0,
        le=1000,
    )

    def validated(self) -> VideoFilterSettings:
        return check_settings(self, "{name}={value!r} must {rule}")


def video_measures(
    videos: pl.DataFrame,
    transcripts: pl.DataFrame,
    transcript_words: pl.DataFrame,
    stable_chunks: pl.DataFrame,
) -> pl.DataFrame:
    """One row per video of `videos`: channel, video_id, duration_s, speech_s, n_words,
    n_medical_chunks, and the transcript's reason for having no words (`no_words_reason`)."""
    # A sentence's span is speech with its short pauses; gaps between sentences are not.
    speech = (
        transcript_words.group_by("video_id", "segment_index")
        .agg(span=pl.col("end_s").max() - pl.col("start_s").min(), n_words=pl.len())
        .group_by("video_id")
        .agg(speech_s=pl.col("span").sum(), n_words=pl.col("n_words").sum())
    )
    medical = (
        medical_chunks(stable_chunks)
        .filter(pl.col("duplicate_of").is_null())
        .group_by("video_id")
        .agg(n_medical_chunks=pl.len())
    )
    why_silent = transcripts.select("video_id", no_words_reason=pl.col("reason"))
    return (
        videos.select("channel", "video_id", "duration_s")
        .join(speech, on="video_id", how="left")
        .join(medical, on="video_id", how="left")
        .join(why_silent, on="video_id", how="left")
        .with_columns(
            pl.col("speech_s").fill_null(0.0),
            pl.col("n_words").fill_null(0).cast(pl.Int32),
            pl.col("n_medical_chunks").fill_null(0).cast(pl.Int32),
        )
        .sort("video_id")
    )


def broken_rules(measures: dict, settings: VideoFilterSettings) -> list[tuple[str, str]]:
    """(rule, sentence) for every rule the video's measures break, in the order of RULES."""
    broken = []
    if measures["n_words"] == 0:
        why = measures["no_words_reason"] or "no words were recognized"
        broken.append(("no_speech", f"no speech: {why}"))
    else:
        if measures["speech_s"] < settings.min_speech_s:
            broken.append(
                (
                    "too_little_speech",
                    f"too little speech: {measures['speech_s']:.1f} s, "
                    f"below min_speech_s={settings.min_speech_s:g} s",
                )
            )
        if measures["n_words"] < settings.min_words:
            broken.append(
                (
                    "too_few_words",
                    f"too few words: {measures['n_words']}, below min_words={settings.min_words}",
                )
            )
    if measures["n_medical_chunks"] < settings.min_medical_chunks:
        broken.append(
            (
                "too_few_medical_chunks",
                f"too few medical chunks: {measures['n_medical_chunks']}, "
                f"below min_medical_chunks={settings.min_medical_chunks}",
            )
        )
    return broken


def filter_videos(
    videos: pl.DataFrame,
    transcripts: pl.DataFrame,
    transcript_words: pl.DataFrame,
    stable_chunks: pl.DataFrame,
    settings: VideoFilterSettings,
) -> pl.DataFrame:
    """The `video_filter` table of one channel: every video, kept or not, and why."""
    rows = []
    for measures in video_measures(videos, transcripts, transcript_words, stable_chunks).iter_rows(
        named=True
    ):
        broken = broken_rules(measures, settings)
        rows.append(
            {name: measures[name] for name in VIDEO_FILTER_SCHEMA if name in measures}
            | {
                "kept": not broken,
                "filtered_by": broken[0][0] if broken else None,
                "reason": "; ".join(sentence for _, sentence in broken) or None,
            }
        )
    return pl.DataFrame(rows, schema=VIDEO_FILTER_SCHEMA)


def kept_rows(table: pl.DataFrame, video_filter: pl.DataFrame) -> pl.DataFrame:
    """The rows of `table` that belong to a kept video; a video `video_filter` does not list is left
    out as well (its filter row is made in the same run, before the table is read)."""
    kept = video_filter.filter(pl.col("kept")).select("video_id")
    return table.join(kept, on="video_id", how="semi")
