"""Script text as a speech recognizer might write it: fillers, repeated words, misheard terms.

Mishearings come from what the project has seen Whisper do: the confusion list (asr/confusions.tsv,
"sagittal" heard as "satchel") read backwards, and a bound prefix written as a word of its own
("hyper intense"). The vocabulary's correction pass undoes both; fillers and repetitions are left
for the text curation to remove.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mednarratives_assets.asr.vocabulary import PREFIXES, MedicalVocabulary
from mednarratives_assets.spoken_text import strip_punctuation

FILLERS = ("um", "uh", "so", "okay", "you know", "right")


@dataclass(frozen=True)
class NoiseLevels:
    filler: float = 0.08  # chance of a filler before each word
    repeat: float = 0.03  # chance that a word is said twice
    mishear: float = 0.6  # chance that a word the confusion list or a prefix split covers is misheard
    run_on: float = 0.3  # chance that a sentence loses its case and full stop


TYPICAL_NOISE = NoiseLevels()


def mishearings(vocabulary: MedicalVocabulary) -> dict[str, list[str]]:
    """Each meant word (lower case) and the ways the confusion list says it was heard."""
    heard_as: dict[str, list[str]] = {}
    for heard, meant in vocabulary.confusions.items():
        if " " not in meant:
            heard_as.setdefault(meant.lower(), []).append(" ".join(heard))
    return heard_as


def split_prefix(word: str, vocabulary: MedicalVocabulary) -> str | None:
    """A term written as its bound prefix and the rest ("hyper intense"), or None for other words."""
    if word not in vocabulary.terms:
        return None
    prefix = next((p for p in sorted(PREFIXES, key=len, reverse=True) if word.startswith(p)), None)
    return f"{prefix} {word[len(prefix) :]}" if prefix and len(word) - len(prefix) >= 3 else None


def misheard(
    text: str,
    rng: np.random.Generator,
    vocabulary: MedicalVocabulary,
    heard_as: dict[str, list[str]],
    levels: NoiseLevels = TYPICAL_NOISE,
) -> str:
    """`text` as heard, with fillers, repeated words and misheard terms; `heard_as` is
    `mishearings(vocabulary)`."""
    out: list[str] = []
    for token in text.split():
        core = strip_punctuation(token)
        if rng.random() < levels.filler:
            out.append(str(rng.choice(FILLERS)))
        heard = core
        options = [*heard_as.get(core.lower(), [])]
        if split := split_prefix(core.lower(), vocabulary):
            options.append(split)
        if options and rng.random() < levels.mishear:
            heard = str(rng.choice(options))
        if rng.random() < levels.repeat:
            out.append(heard)
        out.append(token.replace(core, heard, 1) if core else token)
    return " ".join(out)


def run_on(sentence: str) -> str:
    """A sentence as Whisper writes one it runs into the next: lower case, no full stop."""
    return sentence.lower().rstrip(".?!")
