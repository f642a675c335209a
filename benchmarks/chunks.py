"""Stable-chunk accuracy and speed against the demo corpus's ground truth.

    python benchmarks/chunks.py [--corpus DATA_ROOT ...] [--model PATH] [--figure PNG]

For each lecture it runs the whole stage (decode, still spans, median keyframes, pHash, image
region, classifier, keyframe PNGs) and compares with the truth:
- boundary F1 (±0.5 s) and medical precision and recall, as `evaluation.stage_scores.ChunkScore` defines them;
- image-region IoU of the medical chunks' located rectangle against the slide's image rect;
- speed as seconds of video per second of processing, and decode alone for comparison.
Accuracy is printed for training and reserved styles apart, then per style factor
(`evaluation/style_groups.py`).
The classifier is data/models/frame_classifier.pt unless --model says otherwise
(`mednarratives demo` or materializing frame_classifier trains it).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2

from mednarratives_assets.defs.resources import build_resources
from mednarratives_assets.evaluation.corpus import Lecture, Stopwatch, run_lectures
from mednarratives_assets.evaluation.report import Check, peak_rss_mb, print_checks
from mednarratives_assets.evaluation.stage_scores import ChunkScore
from mednarratives_assets.evaluation.style_groups import StyleGroups, print_by_split
from mednarratives_assets.settings import DataLayout
from mednarratives_assets.stages.frame_classifier import FrameClassifier
from mednarratives_assets.stages.stable_chunks import ChunkingSettings, chunk_video
from mednarratives_assets.video_frames import sample_frames

TARGET_F1 = 0.95
TARGET_MEDICAL = 0.95
TARGET_X_REAL_TIME = 20.0


def decode_sampled_frames(video: Path) -> None:
    """Grab every frame and retrieve the sampled ones, by presentation time as the stage does
    (`video_frames.sample_frames`): timed, the floor under the stage's time."""
    for _ in sample_frames(video, ChunkingSettings().sample_hz):
        pass


def evaluate(corpora: list[Path], classifier: FrameClassifier, figure: Path | None) -> dict:
    settings = ChunkingSettings()
    groups = StyleGroups(ChunkScore)
    with tempfile.TemporaryDirectory() as keyframes:

        def chunk_and_score(lecture: Lecture, stopwatch: Stopwatch) -> bytes | None:
            truth = lecture.truth
            with stopwatch.timed():
                rows, sheet = chunk_video(
                    lecture.video,
                    Path(keyframes) / truth["channel"] / truth["video_id"],
                    classifier.medical_scores,
                    settings,
                    truth["duration_s"],
                )
            with stopwatch.timed("decode"):
                decode_sampled_frames(lecture.video)
            groups.add(truth, rows, truth)
            return sheet

        run = run_lectures(corpora, chunk_and_score)
    sheets = [sheet for sheet in run.results if sheet is not None]
    if figure is not None and sheets:
        figure.write_bytes(sheets[0])
    return {
        "groups": groups,
        "video_s": run.video_s,
        "x_real_time": run.x_real_time,
        "decode_x_real_time": run.rate(run.video_s, "decode"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", action="append", type=Path, help="a data root with a demo corpus")
    parser.add_argument("--model", type=Path, help="a frame classifier file (default: the one in use)")
    parser.add_argument("--figure", type=Path, help="write the first lecture's keyframe contact sheet here")
    args = parser.parse_args()
    layout = DataLayout.from_env()
    corpora = args.corpus or [layout.data_root]
    model = args.model or build_resources(layout)["models"].source("frame_classifier")
    classifier = FrameClassifier.load(model)
    cv2.setNumThreads(2)
    result = evaluate(corpora, classifier, args.figure)
    peak_mb = peak_rss_mb()
    groups: StyleGroups[ChunkScore] = result["groups"]
    print(f"corpora: {', '.join(map(str, corpora))} ({result['video_s']:.0f} s of lectures)")
    print(
        f"classifier: {model}, held-out accuracy "
        f"{classifier.metrics.get('held_out_accuracy', float('nan')):.3f}"
    )

    def print_split(split: str, score: ChunkScore) -> None:
        checks = [
            Check("boundary F1 (±0.5 s)", score.boundary_f1, TARGET_F1),
            Check("medical precision", score.medical_precision, TARGET_MEDICAL),
            Check("medical recall", score.medical_recall, TARGET_MEDICAL),
        ]
        print_checks(checks, name_width=24, value_width=7)
        print(
            f"boundaries: precision {score.boundary_precision:.3f}, recall {score.boundary_recall:.3f} "
            f"of {score.boundaries_truth}; medical chunks: {score.medical_called} called, "
            f"{score.medical_truth} in the truth"
        )
        ious = score.region_ious
        print(f"image region IoU: mean {sum(ious) / max(len(ious), 1):.3f}, min {min(ious, default=0):.3f}")

    print_by_split(groups, print_split)
    groups.print_factor_table(
        {
            "boundary F1": lambda s: s.boundary_f1,
            "medical precision": lambda s: s.medical_precision,
            "medical recall": lambda s: s.medical_recall,
            "medical slides": lambda s: s.medical_truth,
        }
    )
    print()
    print_checks(
        [Check("speed (x real time)", result["x_real_time"], TARGET_X_REAL_TIME, "{:.1f}".format)],
        name_width=24,
        value_width=7,
    )
    print(f"decode alone: {result['decode_x_real_time']:.1f}x real time; peak RSS {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
