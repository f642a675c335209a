"""ASR across voices: MedPix captions read by every voice, scored per voice, per split and per factor.

    python benchmarks/asr_voices.py [--quick] [--models tiny.en,base] [--captions-per-voice 3]
                                    [--voices V1,V2 | --voices-per-split 24,12] [--seed 0]
                                    [--threads 2] [--cache DIR]

Each voice (synthetic/voices.py) reads a fixed, seeded draw of captions (the train split of
../shared/datasets/medpix, else the packaged images' captions) in a seeded style (rate, pitch,
room noise, level); the audio is cached under --cache. Each model runs without and with the
medical prompt; the correction pass runs on the prompted text. Voices are TRAINING or RESERVED
(synthetic/styles.py); reserved voices only measure: the prompt, the confusion list and the
word-start shift were all chosen on training voices, and nothing here changes a setting.

Columns: WER as heard without the prompt, with it, and with the correction pass too; the median
signed word-start error as Whisper gives it (the lag); the median |word-start error| and the
share within 150 ms after the model's word-start shift; speed in multiples of real time, per clip.
A clip of a few captions is shorter than Whisper's 30 s window, which it pads, so per-clip speed
understates the pipeline's: the speed check times the clips joined into one track (up to one
10-minute window of the transcripts stage), as the pipeline hands Whisper a lecture.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from mednarratives_assets.asr.audio import SAMPLE_RATE
from mednarratives_assets.asr.checkpoints import DEFAULT_CHECKPOINT
from mednarratives_assets.asr.engines import AsrSettings, FasterWhisperEngine
from mednarratives_assets.asr.vocabulary import MedicalVocabulary
from mednarratives_assets.evaluation.report import Check
from mednarratives_assets.evaluation.transcript_scores import TimedWord, score_words, signed_start_errors
from mednarratives_assets.settings import MEDPIX_DIR
from mednarratives_assets.spoken_text import speakable
from mednarratives_assets.synthetic.styles import voice_split
from mednarratives_assets.synthetic.voices import (
    LEVEL_DB_RANGE,
    NOISE_DB_RANGE,
    PITCH_RANGE,
    RATE_RANGE,
    VoiceStyle,
    available_voices,
    narrator,
    room_audio,
)

MEDPIX = MEDPIX_DIR / "metadata.jsonl"
TARGET_RESERVED_WER = 0.10
TARGET_START_ERROR_S = 0.080
TARGET_X_REAL_TIME = 15.0
MAX_CAPTION_WORDS = 24
PAUSE_S = 0.6
RATE_BUCKETS = ((0.0, 0.9, "slow"), (0.9, 1.1, "normal"), (1.1, 9.0, "fast"))
NOISE_BUCKETS = ((-99.0, -54.0, "quiet"), (-54.0, -42.0, "some noise"), (-42.0, 0.0, "noisy"))
QUICK_VOICES_PER_SPLIT = 3
QUICK_CAPTIONS_PER_VOICE = 2
MAX_TRACK_S = 600.0  # the transcripts stage's default window


def caption_pool() -> tuple[list[str], str]:
    """Distinct captions in spoken form, at most MAX_CAPTION_WORDS words, and where they came from."""
    if MEDPIX.is_file():
        records = [json.loads(line) for line in MEDPIX.read_text(encoding="utf-8").splitlines() if line]
        texts, source = [r["caption"] for r in records if r.get("split") == "train"], f"{MEDPIX} (train)"
    else:
        from mednarratives_assets.synthetic.medical_images import packaged_images

        texts, source = [image.caption for image in packaged_images()], "packaged image captions"
    pool = []
    for text in dict.fromkeys(texts):
        words = speakable(text).split()
        if len(words) >= 4:
            pool.append(" ".join(words[:MAX_CAPTION_WORDS]))
    return pool, source


def bucket(value: float, buckets: tuple[tuple[float, float, str], ...]) -> str:
    return next(name for low, high, name in buckets if low <= value < high)


def draw_style(voice: str, rng: np.random.Generator) -> VoiceStyle:
    return VoiceStyle(
        voice,
        rate=float(rng.uniform(*RATE_RANGE)),
        pitch=float(rng.uniform(*PITCH_RANGE)),
        noise_db=float(rng.uniform(*NOISE_DB_RANGE)),
        level_db=float(rng.uniform(*LEVEL_DB_RANGE)),
    )


@dataclass
class Clip:
    voice: str
    style: VoiceStyle
    samples: np.ndarray  # 16 kHz mono
    truth: list[TimedWord]

    @property
    def duration_s(self) -> float:
        return self.samples.size / SAMPLE_RATE


def synthesize(voice: str, texts: list[str], seed: int, cache: Path) -> Clip:
    """The voice reading the texts with pauses between them, in a room; cached by its inputs."""
    rng = np.random.default_rng([seed, int(hashlib.sha256(voice.encode()).hexdigest()[:8], 16)])
    style = draw_style(voice, rng)
    key = hashlib.sha256(json.dumps([asdict(style), texts, seed]).encode()).hexdigest()[:16]
    path = cache / f"{key}.npz"
    if path.is_file():
        stored = np.load(path)
        truth = [TimedWord(w, float(t)) for w, t in zip(stored["words"], stored["starts"], strict=True)]
        return Clip(voice, style, stored["samples"], truth)
    speaker = narrator(style)
    pieces, truth, offset_s, rate = [], [], PAUSE_S, None
    for text in texts:
        utterance = speaker.say(text)
        rate = utterance.sample_rate
        if not pieces:
            pieces.append(np.zeros(int(PAUSE_S * rate), np.float32))
        truth += [TimedWord(w.word, offset_s + w.start_s) for w in utterance.words]
        pieces += [utterance.audio, np.zeros(int(PAUSE_S * rate), np.float32)]
        offset_s += (utterance.audio.size + int(PAUSE_S * rate)) / rate
    audio = room_audio(np.concatenate(pieces), rate, style, rng)
    divisor = np.gcd(SAMPLE_RATE, rate)
    samples = resample_poly(audio, SAMPLE_RATE // divisor, rate // divisor).astype(np.float32)
    cache.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.npz")
    np.savez(partial, samples=samples, words=[w.word for w in truth], starts=[w.start_s for w in truth])
    partial.replace(path)
    return Clip(voice, style, samples, truth)


@dataclass
class Tally:
    """Counts summed over clips."""

    reference_words: int = 0
    errors_raw: int = 0
    errors_prompt: int = 0
    errors_corrected: int = 0
    signed_errors_s: list[float] = field(default_factory=list)  # as Whisper gives them
    audio_s: float = 0.0
    transcribe_s: float = 0.0

    def add(self, other: Tally) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)

    def wer(self, errors: int) -> float:
        return errors / max(1, self.reference_words)

    def shifted_abs_errors(self, shift_s: float) -> np.ndarray:
        return np.abs(np.array(self.signed_errors_s) + shift_s)


def factors(clip: Clip) -> dict[str, str]:
    engine, _, name = clip.voice.partition(":")
    accent, _, variant = name.partition("+") if engine == "espeak" else (engine, "", "")
    return {
        "accent": accent,
        "variant": variant or "-",
        "rate": bucket(clip.style.rate, RATE_BUCKETS),
        "noise": bucket(clip.style.noise_db, NOISE_BUCKETS),
    }


def measure(clip: Clip, plain: FasterWhisperEngine, prompted: FasterWhisperEngine, vocabulary) -> Tally:
    raw = plain.transcribe(clip.samples, lambda _: None)
    started = time.perf_counter()
    heard = prompted.transcribe(clip.samples, lambda _: None)
    seconds = time.perf_counter() - started
    heard_words = [TimedWord(w.word, w.start_s) for w in heard.words]
    corrected = [w for s in heard.segments for w in vocabulary.correct(s.text)[0].split()]
    as_words = [TimedWord(w.word, w.start_s) for w in raw.words]
    prompt_score = score_words(clip.truth, heard_words)
    return Tally(
        reference_words=prompt_score.reference_words,
        errors_raw=score_words(clip.truth, as_words).errors,
        errors_prompt=prompt_score.errors,
        errors_corrected=score_words(clip.truth, [TimedWord(w, 0.0) for w in corrected]).errors,
        signed_errors_s=signed_start_errors(clip.truth, heard_words),
        audio_s=clip.duration_s,
        transcribe_s=seconds,
    )


def print_table(title: str, groups: dict[tuple[str, ...], Tally], shift_s: float) -> None:
    print(f"\n{title}")
    print(
        f"{'':<42} {'words':>6} {'WER raw':>8} {'+prompt':>8} {'+corr':>7} {'lag med':>8} "
        f"{'|err| med':>9} {'<=150ms':>8} {'x RT':>6}"
    )
    for key, t in sorted(groups.items()):
        errors = t.shifted_abs_errors(shift_s)
        lag = statistics.median(t.signed_errors_s) * 1000 if t.signed_errors_s else float("nan")
        median_abs = float(np.median(errors)) * 1000 if errors.size else float("nan")
        within = float(np.mean(errors <= 0.150)) if errors.size else float("nan")
        print(
            f"{' / '.join(key):<42} {t.reference_words:>6} {t.wer(t.errors_raw):>8.1%} "
            f"{t.wer(t.errors_prompt):>8.1%} {t.wer(t.errors_corrected):>7.1%} {lag:>6.0f}ms "
            f"{median_abs:>7.0f}ms {within:>8.0%} {t.audio_s / max(t.transcribe_s, 1e-9):>5.1f}x"
        )


def run_model(model: str, clips: list[Clip], threads: int) -> None:
    """Transcribe every clip with the model, print its tables and its PASS/FAIL lines."""
    unshifted = AsrSettings(model_path=model, threads=threads, word_start_shift_s=0.0)
    plain = FasterWhisperEngine(AsrSettings(**(asdict(unshifted) | {"vocabulary_prompt": False})).validated())
    prompted = FasterWhisperEngine(unshifted.validated())
    shift_s = AsrSettings(model_path=model).word_shift_s
    folder = unshifted.resolved_model_path
    size_mb = sum(f.stat().st_size for f in folder.iterdir() if f.is_file()) / 1e6
    started = time.perf_counter()
    prompted.transcribe(np.zeros(SAMPLE_RATE, np.float32), lambda _: None)
    load_s = time.perf_counter() - started
    plain.transcribe(np.zeros(SAMPLE_RATE, np.float32), lambda _: None)
    print(f"\n=== model {model}: {folder} ({size_mb:.0f} MB), loaded in {load_s:.1f} s, {threads} threads")
    vocabulary = MedicalVocabulary()
    by_voice: dict[tuple[str, ...], Tally] = defaultdict(Tally)
    by_split: dict[tuple[str, ...], Tally] = defaultdict(Tally)
    by_factor: dict[tuple[str, ...], Tally] = defaultdict(Tally)
    for clip in clips:
        tally = measure(clip, plain, prompted, vocabulary)
        split = voice_split(clip.voice)
        by_voice[(split, clip.voice)].add(tally)
        by_split[(split,)].add(tally)
        by_split[("all",)].add(tally)
        for factor, value in factors(clip).items():
            by_factor[(factor, split, value)].add(tally)
    print(f"word-start shift applied: {shift_s * 1000:+.0f} ms (the model's, chosen on training voices)")
    print_table("per voice (split / voice)", by_voice, shift_s)
    print_table("per split", by_split, shift_s)
    print_table("per factor (factor / split / value)", by_factor, shift_s)
    training = by_split.get(("training",))
    if training and training.signed_errors_s:
        lag = statistics.median(training.signed_errors_s)
        print(f"\nmedian signed word-start error on training voices: {lag * 1000:+.0f} ms")
    track = np.concatenate([clip.samples for clip in clips])[: int(MAX_TRACK_S * SAMPLE_RATE)]
    started = time.perf_counter()
    prompted.transcribe(track, lambda _: None)
    track_speed = track.size / SAMPLE_RATE / (time.perf_counter() - started)
    print(f"clips joined into one {track.size / SAMPLE_RATE:.0f} s track: {track_speed:.1f}x real time")
    reserved = by_split.get(("reserved",))
    checks = [Check("x real time (joined track)", track_speed, TARGET_X_REAL_TIME, "{:.1f}".format)]
    for name, tally in (("reserved", reserved), ("training", training)):
        if tally is None:
            continue
        errors = tally.shifted_abs_errors(shift_s)
        checks.append(
            Check(
                f"{name} median word-start error",
                float(np.median(errors)) if errors.size else float("inf"),
                TARGET_START_ERROR_S,
                lambda seconds: f"{seconds * 1000:.0f} ms",
                "<=",
            )
        )
    if reserved is not None:
        checks.insert(
            0,
            Check(
                "reserved WER (prompt + corrections)",
                reserved.wer(reserved.errors_corrected),
                TARGET_RESERVED_WER,
                "{:.1%}".format,
                "<=",
            ),
        )
    for check in checks:
        print(f"  {check.verdict}  {check.name} {check.requirement}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="CI size: 3 voices per split, 2 captions each")
    parser.add_argument(
        "--models", default="", help="packaged checkpoints or model folders (default: the default)"
    )
    parser.add_argument("--captions-per-voice", type=int, default=3)
    parser.add_argument("--voices", default="", help="comma-separated voice names (default: all)")
    parser.add_argument(
        "--voices-per-split",
        default="",
        help="TRAINING,RESERVED: so many voices of each split, a seeded draw (default: every voice)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "mednarratives-asr-voices"
    )
    args = parser.parse_args()

    voices = args.voices.split(",") if args.voices else available_voices()
    per_voice = args.captions_per_voice
    counts = None
    if args.voices_per_split:
        try:
            counts = tuple(int(n) for n in args.voices_per_split.split(","))
        except ValueError:
            counts = ()
        if len(counts) != 2 or min(counts) < 0:
            parser.error(f"--voices-per-split {args.voices_per_split!r}: give TRAINING,RESERVED, e.g. 24,12")
    if args.quick:
        counts, per_voice = (QUICK_VOICES_PER_SPLIT, QUICK_VOICES_PER_SPLIT), QUICK_CAPTIONS_PER_VOICE
    if counts:
        rng = np.random.default_rng(args.seed)
        voices = [
            v
            for split, count in zip(("training", "reserved"), counts, strict=True)
            for v in rng.permutation([v for v in voices if voice_split(v) == split])[:count]
        ]
    pool, source = caption_pool()
    if len(pool) < per_voice:
        raise SystemExit(f"only {len(pool)} captions in {source}; ask for fewer per voice")
    clips = []
    for voice in voices:
        rng = np.random.default_rng([args.seed, int(hashlib.sha256(voice.encode()).hexdigest()[:8], 16), 1])
        texts = [pool[i] for i in rng.choice(len(pool), per_voice, replace=False)]
        clips.append(synthesize(voice, texts, args.seed, args.cache))
    n_reserved = sum(voice_split(c.voice) == "reserved" for c in clips)
    print(
        f"captions: {source}; {len(clips)} voices ({len(clips) - n_reserved} training, {n_reserved} "
        f"reserved), {per_voice} captions each, {sum(c.duration_s for c in clips):.0f} s of audio"
    )
    for model in args.models.split(",") if args.models else [DEFAULT_CHECKPOINT]:
        run_model(model, clips, args.threads)


if __name__ == "__main__":
    main()
