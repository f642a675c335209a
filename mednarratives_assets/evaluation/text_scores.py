"""Scoring curated text against a narration whose sentences know their role (ground_truth.SENTENCE_ROLES).

- Caption: word error rate against the script (the sentences as said), as `transcript_scores` counts it.
- Medical text and ROI text, by sentence: a sentence counts as selected by a text when at least half
  of its words (spoken form) appear in the text in the same order (`is_said_in`). Medical text is
  right to select finding sentences and wrong to select filler; an ROI-reference sentence counts
  neither way, since it states a finding too (the prompt's own example keeps one). ROI text is
  right to select ROI-reference sentences and wrong to select any other.
- Boxes: of those whose phrase the ROI text selects (by the same rule), the share whose phrase was
  said in an ROI-reference sentence (precision), and the share of such boxes kept (recall).

`rendered_chunks` gives the same inputs for a rendered lecture that went through the pipeline:
each pair matched to the truth chunk it shows, its boxes given the role of the sentence said
while the pointer dwelt.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from mednarratives_assets.evaluation.stage_scores import temporal_iou
from mednarratives_assets.evaluation.transcript_scores import Score, score_text, total
from mednarratives_assets.spoken_text import spoken_words

SELECTED_SHARE = 0.5  # of a sentence's words that a text must hold, in order, to select it


def is_said_in(sentence: str, text: str) -> bool:
    """True when at least SELECTED_SHARE of the sentence's words appear in `text` in the same order."""
    said, written = spoken_words(sentence), spoken_words(text)
    if not said:
        return False
    matcher = difflib.SequenceMatcher(a=said, b=written, autojunk=False)
    found = sum(block.size for block in matcher.get_matching_blocks())
    return found >= SELECTED_SHARE * len(said)


@dataclass
class Selection:
    """Counts of a selection against the items it should pick."""

    right: int = 0  # selected and relevant
    selected: int = 0  # selected, relevant or not (items that count neither way excluded)
    relevant: int = 0

    def add(self, is_selected: bool, is_relevant: bool) -> None:
        self.right += is_selected and is_relevant
        self.selected += is_selected
        self.relevant += is_relevant

    @property
    def precision(self) -> float:
        return self.right / self.selected if self.selected else float("nan")

    @property
    def recall(self) -> float:
        return self.right / self.relevant if self.relevant else float("nan")


@dataclass
class TextScore:
    """One backend's scores over many chunks."""

    heard: list[Score] = field(default_factory=list)  # the ASR text against the script: the baseline
    caption: list[Score] = field(default_factory=list)
    medical: Selection = field(default_factory=Selection)
    roi: Selection = field(default_factory=Selection)
    boxes: Selection = field(default_factory=Selection)
    chunks: int = 0

    def add(
        self, script: list[tuple[str, str]], heard: str, curated: dict, boxes: list[tuple[str, str]]
    ) -> None:
        """One chunk: `script` its (sentence, role) as said, `heard` its ASR text, `curated` its
        curated_text row (caption, medical_text, roi_text), `boxes` its (phrase, role of the sentence
        the phrase was said in)."""
        said = " ".join(sentence for sentence, _ in script)
        self.heard.append(score_text(said, heard))
        self.caption.append(score_text(said, curated["caption"]))
        for sentence, role in script:
            if role != "roi_reference":
                self.medical.add(is_said_in(sentence, curated["medical_text"]), role == "finding")
            self.roi.add(is_said_in(sentence, curated["roi_text"]), role == "roi_reference")
        for phrase, role in boxes:
            self.boxes.add(is_said_in(phrase, curated["roi_text"]), role == "roi_reference")
        self.chunks += 1

    @property
    def heard_wer(self) -> float:
        return total(self.heard).wer

    @property
    def caption_wer(self) -> float:
        return total(self.caption).wer


@dataclass(frozen=True)
class TruthChunk:
    """What `TextScore.add` needs of one pair besides its curated row."""

    pair_id: str
    script: list[tuple[str, str]]  # (sentence, role), as said
    heard: str  # the pair's ASR caption
    boxes: list[tuple[str, str]]  # (phrase, role of the sentence said most while the pointer dwelt)


def _sentence_spans(truth: dict, chunk_index: int) -> list[tuple[float, float]]:
    spans: dict[int, tuple[float, float]] = {}
    for word in truth["words"]:
        if word["chunk_index"] == chunk_index:
            start, end = spans.get(word["sentence_index"], (word["start_s"], word["end_s"]))
            spans[word["sentence_index"]] = (min(start, word["start_s"]), max(end, word["end_s"]))
    return [spans[i] for i in sorted(spans)]


def _said_during(spans: list[tuple[float, float]], roles: list[str], start_s: float, end_s: float) -> str:
    """The role of the sentence that overlaps [start_s, end_s] most; filler when none does."""
    overlaps = [max(0.0, min(end, end_s) - max(start, start_s)) for start, end in spans]
    best = max(range(len(spans)), key=overlaps.__getitem__, default=None)
    return roles[best] if best is not None and overlaps[best] > 0 else "filler"


def rendered_chunks(
    truth: dict, chunks: list[dict], pairs: list[dict], boxes: list[dict]
) -> list[TruthChunk]:
    """The pairs of one rendered lecture that show a still medical chunk of its truth (temporal IoU
    >= 0.5, as `stage_scores.NarrativeScore` matches them). `chunks`: the lecture's stable_chunks
    rows (chunk_index, start_s, end_s); `pairs`: its aligned_pairs rows (pair_id, chunk_index,
    caption); `boxes`: its boxes rows (chunk_index, start_s, end_s, phrase)."""
    spans_of = {c["chunk_index"]: (c["start_s"], c["end_s"]) for c in chunks}
    matched = []
    for pair in pairs:
        span = spans_of[pair["chunk_index"]]
        shown = [
            c
            for c in truth["chunks"]
            if c["is_medical"] and c["stable"] and temporal_iou(span, (c["start_s"], c["end_s"])) >= 0.5
        ]
        if not shown:
            continue
        chunk = shown[0]
        roles = [s["role"] for s in chunk["sentences"]]
        spans = _sentence_spans(truth, chunk["chunk_index"])
        said = [
            (box["phrase"] or "", _said_during(spans, roles, box["start_s"], box["end_s"]))
            for box in boxes
            if box["chunk_index"] == pair["chunk_index"]
        ]
        script = [(s["text"], s["role"]) for s in chunk["sentences"]]
        matched.append(TruthChunk(pair["pair_id"], script, pair["caption"], said))
    return matched
