"""The demo corpus's ground truth as evaluation reads it: one JSON file per lecture (docs/demo-corpus.md)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from mednarratives_assets.settings import DataLayout

TRUTH_FORMAT = "mednarratives-demo-truth/1"
# What each narration sentence does, in the curation prompt's terms (llm/prompts/curation-v1.md):
# a finding states what the image shows; an ROI reference names the spot pointed at; filler says
# neither (greetings, a case's intro that only names the modality, recaps, closings).
SENTENCE_ROLES = ("finding", "roi_reference", "filler")


def load_truth(path: Path) -> dict:
    truth = json.loads(Path(path).read_text(encoding="utf-8"))
    if truth.get("format") != TRUTH_FORMAT:
        raise ValueError(
            f"{path}: not a demo ground-truth file (format {truth.get('format')!r}, "
            f"expected {TRUTH_FORMAT!r})"
        )
    return truth


def corpus_lectures(data_root: Path) -> Iterator[tuple[dict, Path]]:
    """Each demo lecture under a data root whose video is present: its ground truth and video path."""
    layout = DataLayout(data_root, data_root / "unused.duckdb")
    for truth_file in sorted(layout.ground_truth_dir.glob("*/*.json")):
        truth = load_truth(truth_file)
        video = layout.channel_dir(truth["channel"]) / f"{truth['video_id']}.mp4"
        if video.is_file():
            yield truth, video
