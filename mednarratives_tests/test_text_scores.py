"""Curated-text scoring against role-labelled narration (evaluation.text_scores), and the generated
text-only chunks it is measured on (demo.narrated_text, synthetic.asr_noise)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mednarratives_assets.asr.vocabulary import MedicalVocabulary
from mednarratives_assets.demo.narrated_text import narrated_chunks
from mednarratives_assets.evaluation.ground_truth import SENTENCE_ROLES
from mednarratives_assets.evaluation.text_scores import Selection, TextScore, is_said_in
from mednarratives_assets.synthetic.asr_noise import NoiseLevels, misheard, mishearings
from mednarratives_assets.synthetic.medical_images import packaged_images

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
