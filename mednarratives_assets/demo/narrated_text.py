"""Case chunks as text only: what the demo lecturer says over an image, as said and as heard.

Each chunk is `lecture.case_narration` (the narration the demo videos speak, each sentence with
its role) and an ASR-like version of it (`synthetic.asr_noise`: fillers, repeated words, terms
misheard as Whisper mishears them), with the boxes a pointer would leave: one per region pointed
at, whose phrase runs from the region's noun phrase to the sentence's end, and now and then one
where the pointer rested while another sentence was said. Used to measure curated_text without
rendering or transcribing any video.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image

from mednarratives_assets.asr.vocabulary import MedicalVocabulary
from mednarratives_assets.demo.lecture import case_intro, case_narration, phrase_index
from mednarratives_assets.synthetic.asr_noise import TYPICAL_NOISE, NoiseLevels, misheard, mishearings, run_on
from mednarratives_assets.synthetic.medical_images import MedicalImage
from mednarratives_assets.synthetic.narration import DEMO_NARRATION

RESTING_BOX_SHARE = 0.2  # chance that the pointer rests long enough over another sentence to give a box
_RESTING_WORDS = (3, 6)  # how many words such a box's phrase holds


@dataclass(frozen=True)
class Box:
    phrase: str  # as heard
    role: str  # the role of the sentence it was said in


@dataclass(frozen=True)
class NarratedChunk:
    chunk_id: str
    modality: str
    narration: str  # its style's name (synthetic/narration.py)
    script: list[tuple[str, str]]  # (sentence, role), as said
    heard: str  # the whole narration as an ASR engine would write it
    boxes: list[Box]


def narrated_chunks(
    images: list[MedicalImage],
    n_chunks: int,
    seed: int,
    vocabulary: MedicalVocabulary,
    levels: NoiseLevels = TYPICAL_NOISE,
    max_side: int = 256,
    narrations: tuple[str, ...] = (DEMO_NARRATION,),
) -> Iterator[NarratedChunk]:
    """`n_chunks` case chunks over `images`, round and round, each narrated anew, in `narrations`
    by turns."""
    rng = np.random.default_rng(seed)
    heard_as = mishearings(vocabulary)
    pictures: dict[str, np.ndarray] = {}
    for index in range(n_chunks):
        image = images[index % len(images)]
        if image.image_id not in pictures:  # regions are found on a small copy, as narrated_pairs does
            picture = Image.fromarray(image.load())
            picture.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            pictures[image.image_id] = np.asarray(picture)
        style = narrations[index % len(narrations)]
        intro = case_intro(image, rng, style)
        narration = case_narration(image, pictures[image.image_id], intro, rng, style)
        heard_sentences, boxes = [], []
        for sentence, roi, role in narration:
            words = sentence.split()
            start = phrase_index(sentence, roi.phrase) if roi is not None else len(words)
            before = misheard(" ".join(words[:start]), rng, vocabulary, heard_as, levels)
            pointed = misheard(" ".join(words[start:]), rng, vocabulary, heard_as, levels)
            heard = f"{before} {pointed}".strip()
            if rng.random() < levels.run_on:
                heard, pointed = run_on(heard), run_on(pointed)
            heard_sentences.append(heard)
            if roi is not None:
                boxes.append(Box(pointed, role))
            elif rng.random() < RESTING_BOX_SHARE:
                heard_words = heard.split()
                length = min(len(heard_words), int(rng.integers(*_RESTING_WORDS, endpoint=True)))
                first = int(rng.integers(0, len(heard_words) - length + 1))
                boxes.append(Box(" ".join(heard_words[first : first + length]), role))
        yield NarratedChunk(
            f"case-{index:04d}",
            image.modality,
            style,
            [(sentence, role) for sentence, _, role in narration],
            " ".join(heard_sentences),
            boxes,
        )
