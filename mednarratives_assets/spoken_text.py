"""Written text to the words a listener hears, shared by the demo narrator and ASR scoring.

The narrator speaks `speakable(text)`, so its ground-truth words are spoken forms ("two point
six centimeters"); Whisper writes "2.6 cm". Scoring puts both sides through `spoken_words`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from num2words import num2words

_NUMBER = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)(?![\w.]|\.\d)")
_UNITS = {"cm": "centimeters", "mm": "millimeters", "ml": "milliliters", "kg": "kilograms", "%": "percent"}
_ABBREVIATIONS = {
    "e.g.": "for example",
    "i.e.": "that is",
    "vs.": "versus",
    "approx.": "approximately",
    "&": "and",
}


def speakable(text: str) -> str:
    """Text as a lecturer reads it: numbers and units spelled out, so the words are what is heard."""
    for short, long in _ABBREVIATIONS.items():
        text = re.sub(rf"(?<!\w){re.escape(short)}(?=\s|$)", long, text, flags=re.IGNORECASE)
    text = re.sub(r"[()\[\]{}\"]", " ", text)
    text = re.sub(r"(\d)\s*(cm|mm|ml|kg|%)(?=\W|$)", lambda m: f"{m[1]} {_UNITS[m[2]]}", text)
    text = _NUMBER.sub(lambda m: num2words(float(m[1]) if "." in m[1] else int(m[1])), text)
    text = text.replace("-", " ").replace("/", " ")
    return " ".join(token for token in text.split() if any(ch.isalnum() for ch in token))


def strip_punctuation(token: str) -> str:
    return token.strip(".,;:!?…—'\"")


def spoken_words(text: str) -> list[str]:
    """Lower-case spoken-form words without punctuation: the unit in which WER is counted."""
    words = (strip_punctuation(token).lower() for token in speakable(text).split())
    return [word for word in words if word]


def edit_distance(reference: Sequence, hypothesis: Sequence) -> int:
    """Levenshtein distance (insertions, deletions, substitutions) between two sequences: of words
    for a word error rate, of letters for a misspelling."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        current = [i]
        for j, hyp in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref != hyp)))
        previous = current
    return previous[-1]
