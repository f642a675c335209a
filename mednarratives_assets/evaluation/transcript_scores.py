"""Scoring a transcript against ground truth: word error rate and word-start error.

Both sides are put into spoken form first (`spoken_words`), so "2.6 cm" and "two point six
centimeters" count as the same four words.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

from mednarratives_assets.spoken_text import edit_distance, spoken_words


@dataclass(frozen=True)
class TimedWord:
    word: str
    start_s: float


@dataclass(frozen=True)
class Score:
    errors: int  # substitutions + deletions + insertions
    reference_words: int
    start_errors_s: list[float]  # |start difference| of each word both sides agree on

    @property
    def wer(self) -> float:
        return self.errors / max(1, self.reference_words)


def spoken_timed(words: Iterable[TimedWord]) -> list[TimedWord]:
    """Each word in spoken form; a word that expands ("2.6") gives its start to every part.

    A word is read after the one before it, since a unit is spoken after a number ("2.6", "cm").
    """
    out: list[TimedWord] = []
    previous: list[str] = []
    previous_text = ""
    for w in words:
        in_context = spoken_words(f"{previous_text} {w.word}")
        continues = in_context[: len(previous)] == previous
        parts = in_context[len(previous) :] if continues else spoken_words(w.word)
        out += [TimedWord(part, w.start_s) for part in parts]
        previous, previous_text = spoken_words(w.word), w.word
    return out


def signed_start_errors(truth: Iterable[TimedWord], heard: Iterable[TimedWord]) -> list[float]:
    """Heard start minus true start (seconds; positive: late) of every word both sides agree on,
    matched in spoken form as `score_words` does."""
    ref, hyp = spoken_timed(truth), spoken_timed(heard)
    matcher = difflib.SequenceMatcher(a=[w.word for w in ref], b=[w.word for w in hyp], autojunk=False)
    return [
        hyp[block.b + k].start_s - ref[block.a + k].start_s
        for block in matcher.get_matching_blocks()
        for k in range(block.size)
    ]


def score_words(reference: Iterable[TimedWord], hypothesis: Iterable[TimedWord]) -> Score:
    ref, hyp = spoken_timed(reference), spoken_timed(hypothesis)
    ref_tokens, hyp_tokens = [w.word for w in ref], [w.word for w in hyp]
    matcher = difflib.SequenceMatcher(a=ref_tokens, b=hyp_tokens, autojunk=False)
    start_errors = [
        abs(ref[block.a + k].start_s - hyp[block.b + k].start_s)
        for block in matcher.get_matching_blocks()
        for k in range(block.size)
    ]
    return Score(edit_distance(ref_tokens, hyp_tokens), len(ref_tokens), start_errors)


def total(scores: Iterable[Score]) -> Score:
    scores = list(scores)
    return Score(
        sum(s.errors for s in scores),
        sum(s.reference_words for s in scores),
        [e for s in scores for e in s.start_errors_s],
    )


def score_text(reference: str, hypothesis: str) -> Score:
    """Word errors of an untimed text against its reference, both in spoken form."""
    ref_words = spoken_words(reference)
    return Score(edit_distance(ref_words, spoken_words(hypothesis)), len(ref_words), [])
