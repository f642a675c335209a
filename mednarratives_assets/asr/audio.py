"""A video's sound as 16 kHz mono float32, decoded by PyAV (no ffmpeg executable needed).

The transcripts stage never holds a whole track: `open_audio(path).windows()` decodes it as it goes
and hands out windows of about `window_s` seconds (10 minutes by default), each cut at the quietest
`quiet_s` of its last `search_s` seconds, so that no word is split between two windows; the audio
after the cut starts the next window. A track no longer than one window is one window, with exactly
the samples `load_audio` gives. The decoding is faster-whisper's `decode_audio`, step for step
(resampled to s16 in groups of 500,000 input samples, then scaled to float), so the samples are
the same as before windowing.
"""

from __future__ import annotations

import gc
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from mednarratives_assets.stage_settings import check_settings, setting

SAMPLE_RATE = 16_000  # what Whisper and wav2vec2 expect
# Peak amplitude below which a track counts as silent: about -70 dBFS, under any room tone.
SILENCE_PEAK = 3e-4
_GROUP_SAMPLES = 500_000  # input samples resampled at a time, as faster_whisper.decode_audio does


class NoSpeechAudio(Exception):
    """The video has nothing to transcribe; the message is the reason recorded for it."""


@dataclass(frozen=True)
class Audio:
    samples: np.ndarray  # float32 mono at SAMPLE_RATE
    duration_s: float


@dataclass(frozen=True)
class AudioWindow:
    start_s: float  # where the window starts in the track: add it to times found in the window
    samples: np.ndarray  # float32 mono at SAMPLE_RATE

    @property
    def duration_s(self) -> float:
        return self.samples.size / SAMPLE_RATE


@dataclass(frozen=True)
class Windowing:
    """How a track is cut into windows for transcription; memory grows with `window_s`, not the track."""

    window_s: float = setting(
        600.0, "Seconds of audio decoded and transcribed at a time.", gt=0, le=7200, unit="seconds"
    )
    search_s: float = setting(
        20.0, "A window is cut in its last this many seconds, at the quietest point.", gt=0, unit="seconds"
    )
    quiet_s: float = setting(
        0.5, "Length of the quiet stretch whose middle is the cut.", gt=0, le=5, unit="seconds"
    )

    def validated(self) -> Windowing:
        check_settings(self, "audio window setting {name}={value!r}: must {rule}")
        if not self.quiet_s < self.search_s < self.window_s / 2:
            raise ValueError(
                f"audio window settings: quiet_s ({self.quiet_s:g}) must be below search_s "
                f"({self.search_s:g}), and search_s below half of window_s ({self.window_s:g})"
            )
        return self


def quietest_cut(samples: np.ndarray, quiet_n: int, hop_n: int = SAMPLE_RATE // 100) -> int:
    """The middle of the `quiet_n` samples of least energy in `samples` (starts on a `hop_n` grid);
    on a tie the latest, nearest the window's nominal end."""
    if samples.size <= quiet_n:
        return samples.size // 2
    squares = np.concatenate([[0.0], np.cumsum(samples.astype(np.float64) ** 2)])
    starts = np.arange(0, samples.size - quiet_n + 1, hop_n)
    energy = squares[starts + quiet_n] - squares[starts]
    latest_minimum = energy.size - 1 - int(np.argmin(energy[::-1]))
    return int(starts[latest_minimum]) + quiet_n // 2


class AudioTrack:
    """The first audio stream of a video, opened and checked, decoded only by `windows()`."""

    def __init__(self, path: Path):
        self.path = path
        try:
            with av.open(str(path)) as container:
                streams = container.streams.audio
                self.duration_s = _stream_duration(container, streams[0]) if streams else None
        except av.FFmpegError as exc:
            raise ValueError(f"{path.name}: not a readable media file: {exc.strerror}") from exc
        if not streams:
            raise NoSpeechAudio("no audio stream")
        self.decoded_s = 0.0  # seconds decoded so far; the whole track once `windows()` is done

    def chunks(self) -> Iterator[np.ndarray]:
        """The track as float32 pieces of a few seconds, in order (faster-whisper's decoding)."""
        resampler = av.audio.resampler.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        try:
            with av.open(str(self.path), mode="r", metadata_errors="ignore") as container:
                fifo = av.audio.fifo.AudioFifo()
                for frame in itertools.chain(_valid_frames(container.decode(audio=0)), [None]):
                    if frame is not None:
                        frame.pts = None  # ignore the timestamp check
                        fifo.write(frame)
                        if fifo.samples < _GROUP_SAMPLES:
                            continue
                    group = fifo.read() if fifo.samples else None
                    for resampled in resampler.resample(group) if group is not None else []:
                        yield resampled.to_ndarray().reshape(-1).astype(np.float32) / 32768.0
                    if frame is None:  # flush the resampler
                        for resampled in resampler.resample(None):
                            yield resampled.to_ndarray().reshape(-1).astype(np.float32) / 32768.0
        finally:
            # Some of the resampler's objects are freed only by the garbage collector
            # (https://github.com/SYSTRAN/faster-whisper/issues/390).
            del resampler
            gc.collect()

    def windows(self, windowing: Windowing | None = None) -> Iterator[AudioWindow]:
        """The track's windows that hold sound, in order. Silent windows are skipped; when every
        window is silent, or there are no samples at all, NoSpeechAudio is raised at the end."""
        windowing = (windowing or Windowing()).validated()
        window_n = round(windowing.window_s * SAMPLE_RATE)
        search_n = round(windowing.search_s * SAMPLE_RATE)
        quiet_n = round(windowing.quiet_s * SAMPLE_RATE)
        pending: list[np.ndarray] = []
        pending_n = 0
        offset_n = 0  # the track sample where `pending` starts
        decoded_n = 0
        sounding = 0

        def window(samples: np.ndarray) -> AudioWindow | None:
            nonlocal offset_n, sounding
            start_n, offset_n = offset_n, offset_n + samples.size
            if samples.size == 0 or float(np.abs(samples).max()) < SILENCE_PEAK:
                return None
            sounding += 1
            return AudioWindow(start_n / SAMPLE_RATE, samples)

        for chunk in self.chunks():
            pending.append(chunk)
            pending_n += chunk.size
            decoded_n += chunk.size
            self.decoded_s = decoded_n / SAMPLE_RATE
            while pending_n > window_n:  # more than a window: cut it at a quiet point near its end
                held = np.concatenate(pending)
                cut = window_n - search_n + quietest_cut(held[window_n - search_n : window_n], quiet_n)
                pending, pending_n = [held[cut:].copy()], held.size - cut
                if (made := window(held[:cut])) is not None:
                    yield made
                    made = None  # hold no window while the next one is decoded
                del held
        if pending_n and (made := window(np.concatenate(pending))) is not None:
            yield made
        if decoded_n == 0:
            raise NoSpeechAudio("the audio stream holds no samples")
        if sounding == 0:
            raise NoSpeechAudio(f"silent audio (peak below {SILENCE_PEAK:g} of full scale)")


def open_audio(path: Path) -> AudioTrack:
    """The video's first audio stream. Raises NoSpeechAudio when there is none, ValueError when the
    file is not media; silence is found while decoding (see `AudioTrack.windows`)."""
    return AudioTrack(path)


def load_audio(path: Path) -> Audio:
    """The whole first audio stream at once, for short clips (benchmarks, tests); the transcripts
    stage decodes in windows instead. Raises NoSpeechAudio when there is none or it is silent."""
    track = open_audio(path)
    samples = np.concatenate([np.zeros(0, np.float32), *track.chunks()])
    if samples.size == 0:
        raise NoSpeechAudio("the audio stream holds no samples")
    if float(np.abs(samples).max()) < SILENCE_PEAK:
        raise NoSpeechAudio(f"silent audio (peak below {SILENCE_PEAK:g} of full scale)")
    return Audio(samples=samples, duration_s=samples.size / SAMPLE_RATE)


def _valid_frames(frames: Iterator) -> Iterator:
    """The decoder's frames, skipping those it cannot decode (as faster-whisper does)."""
    iterator = iter(frames)
    while True:
        try:
            yield next(iterator)
        except StopIteration:
            return
        except av.error.InvalidDataError:
            continue


def _stream_duration(container, stream) -> float | None:
    """The stream's length as the container states it (before decoding), or None."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None
