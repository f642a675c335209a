"""Choose the chunk and trace thresholds on training styles, and print what each candidate scores.

    python benchmarks/thresholds.py --corpus TRAINING_DATA_ROOT [--corpus ...]

The corpora must hold training-style lectures only (`mednarratives demo --styles training`): a
reserved-style lecture stops the script, since a threshold chosen with it would no longer be
measured fairly on it (docs/generalization.md). For each setting it sweeps a few values around
the default and prints the figures and the value it would choose:

- `medical_threshold` (stable_chunks): the classifier score from which a chunk is medical; the
  choice maximizes the lower of medical precision and recall (ties: nearest 0.5);
- `confirm_min_confidence`, `min_lone_confidence` and `zoom_to_px` (cursor_traces), one after
  the other, each with the values chosen before it: the choice maximizes the samples with a point
  within 6 px of the hotspot among values with under 1% false positives.

The models are the data root's (--classifier, --detector to override).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

import cv2

from mednarratives_assets.defs.resources import build_resources
from mednarratives_assets.evaluation.corpus import Lecture, lectures_of
from mednarratives_assets.evaluation.stage_scores import ChunkScore, TraceScore
from mednarratives_assets.evaluation.style_groups import lecture_factors
from mednarratives_assets.settings import DataLayout
from mednarratives_assets.stages.cursor_detector import CursorDetector
from mednarratives_assets.stages.cursor_traces import TraceSettings, trace_video
from mednarratives_assets.stages.frame_classifier import FrameClassifier
from mednarratives_assets.stages.stable_chunks import ChunkingSettings, chunk_video

MEDICAL_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)
TRACE_SWEEPS = {  # swept in this order, each with the values chosen before it
    "confirm_min_confidence": (0.3, 0.4, 0.5),
    "min_lone_confidence": (0.6, 0.75, 0.9),
    "zoom_to_px": (24.0, 32.0, 40.0),
}
MAX_FALSE_POSITIVES = 0.01


def training_lectures(corpora: list[Path]) -> list[Lecture]:
    lectures = lectures_of(corpora)
    if reserved := [
        f"{lecture.truth['channel']}/{lecture.truth['video_id']}"
        for lecture in lectures
        if lecture_factors(lecture.truth)["split"] == "reserved"
    ]:
        raise SystemExit(f"reserved-style lectures must not choose a threshold: {', '.join(reserved)}")
    if not lectures:
        raise SystemExit(f"no lectures with ground truth under {', '.join(map(str, corpora))}")
    return lectures


def sweep_medical_threshold(chunked: list[tuple[Lecture, list[dict]]]) -> float:
    """Re-threshold the chunks' classifier scores; returns the chosen threshold."""
    print("medical_threshold  precision  recall")
    scored = []
    for threshold in MEDICAL_THRESHOLDS:
        score = ChunkScore()
        for lecture, rows in chunked:
            relabelled = [
                {**row, "is_medical": row["medical_score"] is not None and row["medical_score"] >= threshold}
                for row in rows
            ]
            score.add(relabelled, lecture.truth)
        scored.append((min(score.medical_precision, score.medical_recall), -abs(threshold - 0.5), threshold))
        print(f"{threshold:>17.2f} {score.medical_precision:>10.3f} {score.medical_recall:>7.3f}")
    return max(scored)[2]


def sweep_trace_settings(
    chunked: list[tuple[Lecture, list[dict]]], detector: CursorDetector, scratch: Path
) -> dict[str, float]:
    """Trace the medical chunks once per candidate value; returns the chosen value of each setting."""
    chosen = {}
    for name, values in TRACE_SWEEPS.items():
        print(f"\n{name:<24} within 6 px  coverage  false positives")
        candidates = []
        for value in values:
            settings = dataclasses.replace(TraceSettings(), **{**chosen, name: value})
            score = TraceScore()
            for lecture, rows in chunked:
                medical = [row for row in rows if row["is_medical"]]
                traced = trace_video(lecture.video, medical, scratch, detector, settings)
                score.add(traced.points.to_dicts(), traced.sample_times, lecture.truth)
            print(
                f"{value:>24.2f} {score.within(6):>11.3f} {score.coverage:>9.3f} "
                f"{score.false_positive_rate:>16.4f}"
            )
            if score.false_positive_rate < MAX_FALSE_POSITIVES:
                candidates.append((score.within(6) * score.coverage, value))
        chosen[name] = max(candidates)[1] if candidates else getattr(TraceSettings(), name)
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--corpus", action="append", type=Path, required=True, help="a training-style data root"
    )
    parser.add_argument("--classifier", type=Path, help="a frame classifier file (default: the one in use)")
    parser.add_argument("--detector", type=Path, help="a cursor detector file (default: the one in use)")
    args = parser.parse_args()
    layout = DataLayout.from_env()
    lectures = training_lectures(args.corpus)
    models = build_resources(layout)["models"]
    classifier = FrameClassifier.load(args.classifier or models.source("frame_classifier"))
    detector = CursorDetector.load(args.detector or models.source("cursor_detector"))
    cv2.setNumThreads(2)
    print(f"{len(lectures)} training-style lectures from {', '.join(map(str, args.corpus))}\n")
    with tempfile.TemporaryDirectory() as scratch:
        chunked = []
        for lecture in lectures:
            truth = lecture.truth
            keyframes = Path(scratch) / truth["channel"] / truth["video_id"]
            rows, _ = chunk_video(
                lecture.video, keyframes, classifier.medical_scores, ChunkingSettings(), truth["duration_s"]
            )
            chunked.append((lecture, rows))
        medical_threshold = sweep_medical_threshold(chunked)
        trace_choice = sweep_trace_settings(chunked, detector, Path(scratch))
    print(
        f"\nchosen on training styles: medical_threshold={medical_threshold}, "
        + ", ".join(f"{name}={value}" for name, value in trace_choice.items())
    )


if __name__ == "__main__":
    main()
