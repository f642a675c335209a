"""Curated-text scoring against role-labelled narration (evaluation.text_scores), and the generated
text-only chunks it is measured on (demo.narrated_text, synthetic.asr_noise)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mednarratives_assets.asr.vocabulary import MedicalVocabulary
from mednarratives_assets.demo.narrated_text import narrated_chunks
from mednarratives_assets.evaluation.ground_truth import SENTENCE_ROLES
from mednarratives_assets.evaluation.text_scores import Selection, TextScore, is_said_in, rendered_chunks
from mednarratives_assets.synthetic.asr_noise import NoiseLevels, misheard, mishearings
from mednarratives_assets.synthetic.medical_images import packaged_images
from mednarratives_assets.synthetic.narration import NARRATIONS

VOCABULARY = MedicalVocabulary()
SCRIPT = [
    ("Here is a CT scan of the head.", "filler"),
    ("A large lesion in the liver.", "finding"),
    ("Notice this hypodense focus in the upper left.", "roi_reference"),
]


@pytest.mark.parametrize(
    ("sentence", "text", "said"),
    [
        ("Notice this hypodense focus in the upper left.", "this hypodense focus in the upper left", True),
        ("A large lesion in the liver.", "this hypodense focus in the upper left", False),  # 2 of 6
        ("this focus here", "this hypodense focus", True),  # 2 of 3, in order
        ("focus this here", "this hypodense focus", False),  # 1 of 3 in order
        ("A CT of 2 cm.", "a ct of two centimeters", True),  # both in spoken form
        ("Anything at all.", "", False),
    ],
)
def test_a_sentence_is_said_in_a_text_when_half_its_words_are_there_in_order(sentence, text, said):
    assert is_said_in(sentence, text) is said


def test_selection_precision_and_recall():
    selection = Selection()
    for is_selected, is_relevant in [(True, True), (True, False), (False, True), (False, False)]:
        selection.add(is_selected, is_relevant)
    assert (selection.right, selection.selected, selection.relevant) == (1, 2, 2)
    assert selection.precision == 0.5 and selection.recall == 0.5
    assert math.isnan(Selection().precision) and math.isnan(Selection().recall)


def test_a_chunk_scored_by_hand():
    score = TextScore()
    score.add(
        SCRIPT,
        "um here is a CT scan of the head. a large lesion in the liver. "
        "notice this hypo dense focus in the upper left",
        {
            "caption": "Here is a CT scan of the head. A large lesion in the liver. "
            "Notice this hypodense focus in the upper left.",
            "medical_text": "Here is a CT scan of the head. A large lesion in the liver.",
            "roi_text": "this hypodense focus in the upper left",
        },
        [
            ("this hypo dense focus in the upper left", "roi_reference"),  # 6 of 8 words: kept, right
            ("here is a ct", "filler"),  # none: dropped
            ("this focus here", "filler"),  # 2 of 3: kept, wrong
        ],
    )
    # 22 words said; heard: "um" inserted, "hypodense" as "hypo dense" (a substitution and an insertion)
    assert score.heard_wer == pytest.approx(3 / 22) and score.caption_wer == 0
    # the filler sentence is wrongly medical; the ROI sentence counts neither way
    assert (score.medical.right, score.medical.selected, score.medical.relevant) == (1, 2, 1)
    assert (score.roi.right, score.roi.selected, score.roi.relevant) == (1, 1, 1)
    assert (score.boxes.right, score.boxes.selected, score.boxes.relevant) == (1, 2, 1)
    assert score.chunks == 1


def test_generated_chunks_give_every_sentence_a_role_and_every_region_a_box():
    chunks = list(narrated_chunks(packaged_images()[:3], 6, seed=1, vocabulary=VOCABULARY))
    assert len(chunks) == 6
    for chunk in chunks:
        roles = [role for _, role in chunk.script]
        assert set(roles) <= set(SENTENCE_ROLES) and "finding" in roles and "roi_reference" in roles
        region_boxes = [box for box in chunk.boxes if box.role == "roi_reference"]
        assert len(region_boxes) == roles.count("roi_reference")
        assert all("this" in box.phrase.lower().split() for box in region_boxes)
        assert all(box.phrase in chunk.heard for box in chunk.boxes)


def test_terms_are_misheard_as_the_confusion_list_says_and_the_vocabulary_undoes_it():
    always = NoiseLevels(filler=0, repeat=0, mishear=1, run_on=0)
    heard_as = mishearings(VOCABULARY)
    rng = np.random.default_rng(0)
    said = "A sagittal view with a hyperintense focus."
    heard = misheard(said, rng, VOCABULARY, heard_as, always)
    assert "sagittal" not in heard and "hyperintense" not in heard
    assert VOCABULARY.correct(heard)[0] == said


@pytest.mark.parametrize("narration", sorted(NARRATIONS))
def test_every_narration_names_its_regions_where_the_pointer_can_find_them(narration):
    """A pointing sentence holds its region's phrase word for word (the pointer choreography and
    the boxes start there), worded with the narration's determiner."""
    clean = NoiseLevels(filler=0, repeat=0, mishear=0, run_on=0)
    chunks = list(narrated_chunks(packaged_images()[:4], 8, 2, VOCABULARY, clean, narrations=(narration,)))
    determiner = NARRATIONS[narration].determiner
    for chunk in chunks:
        assert chunk.narration == narration
        region_boxes = [box for box in chunk.boxes if box.role == "roi_reference"]
        assert region_boxes
        assert all(box.phrase.split()[0].lower() == determiner for box in region_boxes)
        [intro, _] = [sentence for sentence, role in chunk.script[:2]]
        assert any(intro.startswith(t.split("{")[0]) for t in NARRATIONS[narration].intros)


def _truth_word(word: str, start_s: float, chunk_index: int, sentence_index: int) -> dict:
    return {
        "word": word,
        "start_s": start_s,
        "end_s": start_s + 0.4,
        "chunk_index": chunk_index,
        "sentence_index": sentence_index,
    }


def test_a_rendered_pair_is_matched_to_the_chunk_it_shows_and_its_boxes_to_what_was_said():
    sentences = [("Here is a CT of the head.", "filler"), ("Notice this focus here.", "roi_reference")]
    truth = {
        "chunks": [
            {
                "chunk_index": 0,
                "is_medical": False,
                "stable": True,
                "start_s": 0.0,
                "end_s": 4.0,
                "sentences": [],
            },
            {
                "chunk_index": 1,
                "is_medical": True,
                "stable": True,
                "start_s": 4.0,
                "end_s": 12.0,
                "sentences": [{"text": text, "role": role} for text, role in sentences],
            },
        ],
        "words": [
            _truth_word(w, 4.5 + 0.5 * i, 1, 0) for i, w in enumerate("Here is a CT of the head.".split())
        ]
        + [_truth_word(w, 9.0 + 0.5 * i, 1, 1) for i, w in enumerate("Notice this focus here.".split())],
    }
    chunks = [
        {"chunk_index": 0, "start_s": 0.0, "end_s": 4.2},
        {"chunk_index": 1, "start_s": 4.3, "end_s": 12.0},
    ]
    pairs = [
        {"pair_id": "p0", "chunk_index": 0, "caption": "title"},  # no still medical chunk there
        {"pair_id": "p1", "chunk_index": 1, "caption": "here is a ct of the head notice this focus here"},
    ]
    boxes = [
        {"chunk_index": 1, "start_s": 5.0, "end_s": 6.5, "phrase": "a ct of"},  # during the intro
        {
            "chunk_index": 1,
            "start_s": 8.8,
            "end_s": 11.0,
            "phrase": "this focus here",
        },  # mostly the ROI sentence
        {"chunk_index": 1, "start_s": 11.5, "end_s": 11.9, "phrase": None},  # after every word
        {"chunk_index": 0, "start_s": 1.0, "end_s": 2.0, "phrase": "welcome"},  # another chunk's
    ]
    [matched] = rendered_chunks(truth, chunks, pairs, boxes)
    assert matched.pair_id == "p1" and matched.script == sentences
    assert matched.heard == pairs[1]["caption"]
    assert matched.boxes == [("a ct of", "filler"), ("this focus here", "roi_reference"), ("", "filler")]
