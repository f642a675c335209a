"""Word-time correction.

Whisper's word times come from cross-attention and are off by a roughly constant amount that
depends on the checkpoint (asr/checkpoints.py); a constant shift, measured on training voices only
(benchmarks/asr_voices.py), removes most of it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import TypeVar

Timed = TypeVar("Timed")  # a dataclass with start_s and end_s, such as engines.AsrWord


def shift_word_times(words: Iterable[Timed], shift_s: float) -> list[Timed]:
    """Each word moved by `shift_s`, never before 0 and never ending before it starts."""
    shifted = []
    for word in words:
        start = max(0.0, word.start_s + shift_s)
        shifted.append(replace(word, start_s=start, end_s=max(start, word.end_s + shift_s)))
    return shifted
