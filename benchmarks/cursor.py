"""Cursor-trace accuracy and speed against the demo corpus's ground truth.

    python benchmarks/cursor.py [--corpus DATA_ROOT ...] [--detector PATH] [--figure PNG]

For each lecture the stable-chunks stage runs first (untimed, keyframes in a temporary folder),
then the traces stage over its medical chunks, timed. Every sample of those chunks is compared
with the truth's pointer, as `evaluation.stage_scores.TraceScore` defines it:
- coverage: samples with a point, of those where the pointer is visible;
- hotspot error at 720p: median, and the share of points within 6 px;
- false positives: samples with a point, of those where no pointer is visible;
- speed: samples per second, and seconds of traced chunk per second of processing.
The models are data/models/frame_classifier.pt and cursor_detector.pt unless told otherwise
(by default the models in use: the data root's, else the shipped ones).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2

from mednarratives_assets.defs.resources import build_resources
from mednarratives_assets.evaluation.corpus import Lecture, Stopwatch, run_lectures
from mednarratives_assets.evaluation.report import Check, peak_rss_mb, print_checks
from mednarratives_assets.evaluation.stage_scores import TraceScore
from mednarratives_assets.evaluation.style_groups import StyleGroups, print_by_split
from mednarratives_assets.settings import DataLayout
from mednarratives_assets.stages.cursor_detector import CursorDetector
from mednarratives_assets.stages.cursor_traces import TraceSettings, trace_video
from mednarratives_assets.stages.frame_classifier import FrameClassifier
from mednarratives_assets.stages.stable_chunks import ChunkingSettings, chunk_video

TARGET_WITHIN_6PX = 0.95
TARGET_COVERAGE = 0.92
TARGET_FALSE_POSITIVES = 0.01
TARGET_X_REAL_TIME = 4.0


def evaluate(corpora: list[Path], classifier: FrameClassifier, detector: CursorDetector, figure: Path | None):
    settings = TraceSettings()
    groups = StyleGroups(TraceScore)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)

        def trace_and_score(lecture: Lecture, stopwatch: Stopwatch) -> tuple[float, int]:
            """The lecture's seconds of medical chunks and its samples."""
            truth = lecture.truth
            rows, _ = chunk_video(
                lecture.video,
                root / truth["channel"] / truth["video_id"],
                classifier.medical_scores,
                ChunkingSettings(),
                truth["duration_s"],
            )
            medical = [row for row in rows if row["is_medical"]]
            with stopwatch.timed():
                traced = trace_video(lecture.video, medical, root, detector, settings)
            points = traced.points.to_dicts()
            groups.add(truth, points, traced.sample_times, truth)
            if figure is not None and traced.overlays and not figure.exists():
                figure.write_bytes(max(traced.overlays.values(), key=len))
            return sum(row["end_s"] - row["start_s"] for row in medical), len(traced.sample_times)

        run = run_lectures(corpora, trace_and_score)
    traced_s = sum(seconds for seconds, _ in run.results)
    return {
        "groups": groups,
        "n_lectures": len(run.lectures),
        "traced_s": traced_s,
        "video_s": run.video_s,
        "fps": run.rate(sum(samples for _, samples in run.results)),
        "x_real_time": run.rate(traced_s),
        "x_real_time_whole_video": run.x_real_time,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", action="append", type=Path, help="a data root with a demo corpus")
    parser.add_argument("--detector", type=Path, help="a cursor detector file (default: the one in use)")
    parser.add_argument("--figure", type=Path, help="write one chunk's trace overlay here")
    args = parser.parse_args()
    layout = DataLayout.from_env()
    corpora = args.corpus or [layout.data_root]
    models = build_resources(layout)["models"]
    detector_path = args.detector or models.source("cursor_detector")
    detector = CursorDetector.load(detector_path)
    classifier = FrameClassifier.load(models.source("frame_classifier"))
    cv2.setNumThreads(2)
    result = evaluate(corpora, classifier, detector, args.figure)
    peak_mb = peak_rss_mb()
    groups: StyleGroups[TraceScore] = result["groups"]
    print(
        f"corpora: {', '.join(map(str, corpora))}: {result['n_lectures']} lectures, "
        f"{result['traced_s']:.0f} s of medical chunks traced of {result['video_s']:.0f} s"
    )
    metrics = detector.metrics
    print(
        f"detector: {detector_path}, held-out pose mAP50 "
        f"{metrics['pose_map50']:.3f}, hotspot within 6 px {metrics['hotspot_within_6px']:.3f}"
    )

    def print_split(split: str, score: TraceScore) -> None:
        checks = [
            Check("within 6 px at 720p", score.within(6), TARGET_WITHIN_6PX),
            Check("coverage", score.coverage, TARGET_COVERAGE),
            Check(
                "false-positive rate", score.false_positive_rate, TARGET_FALSE_POSITIVES, "{:.4f}".format, "<"
            ),
        ]
        print_checks(checks, name_width=22, value_width=8)
        dx, dy = score.median_offset_px
        print(
            f"{score.visible_samples} samples with a visible pointer; median hotspot error "
            f"{score.median_error_px:.2f} px; within 3 px {score.within(3):.3f}; median offset "
            f"({dx:+.2f}, {dy:+.2f}) px"
        )
        print(f"false positives: {score.false_positives} of {score.hidden_samples} samples without a pointer")

    print_by_split(groups, print_split)
    groups.print_factor_table(
        {
            "within 6 px": lambda s: s.within(6),
            "median px": lambda s: s.median_error_px,
            "offset x": lambda s: s.median_offset_px[0],
            "offset y": lambda s: s.median_offset_px[1],
            "coverage": lambda s: s.coverage,
            "false positives": lambda s: s.false_positive_rate,
        }
    )
    print()
    print_checks(
        [Check("speed (x real time)", result["x_real_time"], TARGET_X_REAL_TIME, "{:.1f}".format)],
        name_width=22,
        value_width=8,
    )
    print(
        f"speed: {result['fps']:.0f} samples/s; {result['x_real_time_whole_video']:.1f}x real time over "
        f"whole videos; peak RSS {peak_mb:.0f} MB"
    )


if __name__ == "__main__":
    main()
