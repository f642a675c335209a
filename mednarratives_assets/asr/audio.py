"""A video's sound as 16 kHz mono float32, decoded by PyAV (no ffmpeg executable needed)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from faster_whisper.audio import decode_audio

SAMPLE_RATE = 16_000  # what Whisper and wav2vec2 expect
# Peak amplitude below which a track counts as silent: about -70 dBFS, under any room tone.
SILENCE_PEAK = 3e-4


class NoSpeechAudio(Exception):
    """The video has nothing to transcribe; the message is the reason recorded for it."""


@dataclass(frozen=True)
class Audio:
    samples: np.ndarray  # float32 mono at SAMPLE_RATE
    duration_s: float


def load_audio(path: Path) -> Audio:
    """Decode the first audio stream. Raises NoSpeechAudio when there is none or it is silent."""
    try:
        with av.open(str(path)) as container:
            has_audio = bool(container.streams.audio)
    except av.FFmpegError as exc:
        raise ValueError(f"{path.name}: not a readable media file: {exc.strerror}") from exc
    if not has_audio:
        raise NoSpeechAudio("no audio stream")
    samples = decode_audio(str(path), sampling_rate=SAMPLE_RATE)
    if samples.size == 0:
        raise NoSpeechAudio("the audio stream holds no samples")
    if float(np.abs(samples).max()) < SILENCE_PEAK:
        raise NoSpeechAudio(f"silent audio (peak below {SILENCE_PEAK:g} of full scale)")
    return Audio(samples=samples, duration_s=samples.size / SAMPLE_RATE)
