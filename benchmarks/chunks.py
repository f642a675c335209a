"""Stable-chunk accuracy and speed against the demo corpus's ground truth.

    python benchmarks/chunks.py [--corpus DATA_ROOT ...] [--model PATH] [--figure PNG]

For each lecture it runs the whole stage (decode, still spans, median keyframes, pHash, image
region, classifier, keyframe PNGs) and compares with the truth:
- boundary F1: starts and ends of predicted chunks against those of the truth's stable chunks,
  matched one to one within 0.5 s (the video's own first and last instants are left out);
- medical precision and recall: a chunk counts when it overlaps a truth chunk with temporal
  IoU >= 0.5; recall is over the truth's stable medical chunks (image slides), precision over
  the chunks the classifier called medical;
- image-region IoU of the medical chunks' located rectangle against the slide's image rect;
- speed as seconds of video per second of processing, and decode alone for comparison.
The classifier is data/models/frame_classifier.pt unless --model says otherwise
(`mednarratives demo` or materializing frame_classifier trains it).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import cv2

from mednarratives_assets.demo.corpus import load_truth
from mednarratives_assets.settings import DataLayout
from mednarratives_assets.stages.frame_classifier import FrameClassifier
from mednarratives_assets.stages.stable_chunks import ChunkingSettings, chunk_video

TOLERANCE_S = 0.5
TARGET_F1 = 0.95
TARGET_MEDICAL = 0.95
TARGET_X_REAL_TIME = 20.0


def match_boundaries(predicted: list[float], truth: list[float], tolerance: float) -> int:
    """Predicted boundaries paired one to one with a truth boundary within `tolerance`, closest first."""
    pairs = sorted((abs(p - t), i, j) for i, p in enumerate(predicted) for j, t in enumerate(truth))
    used_p, used_t = set(), set()
    for gap, i, j in pairs:
        if gap <= tolerance and i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
    return len(used_p)


def temporal_iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    return inter / max(max(a[1], b[1]) - min(a[0], b[0]), 1e-9)


def box_iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    inter_w = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    inter_h = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = inter_w * inter_h
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def inner_boundaries(spans: list[tuple[float, float]], duration: float) -> list[float]:
    return [x for span in spans for x in span if TOLERANCE_S < x < duration - TOLERANCE_S]


def decode_seconds(video: Path) -> float:
    """Time to grab every frame and retrieve the sampled ones: the floor under the stage's time."""
    started = time.perf_counter()
    capture = cv2.VideoCapture(str(video))
    step = max(1, round(capture.get(cv2.CAP_PROP_FPS) / ChunkingSettings().sample_hz))
    index = 0
    while capture.grab():
        if index % step == 0:
            capture.retrieve()
        index += 1
    capture.release()
    return time.perf_counter() - started


def evaluate(corpora: list[Path], classifier: FrameClassifier, figure: Path | None) -> dict:
    settings = ChunkingSettings()
    totals = dict.fromkeys(["b_tp", "b_pred", "b_truth", "m_tp_p", "m_pred", "m_tp_r", "m_truth"], 0)
    ious, video_s, stage_s, decode_s, sheets = [], 0.0, 0.0, 0.0, []
    with tempfile.TemporaryDirectory() as keyframes:
        for corpus in corpora:
            layout = DataLayout(corpus, corpus / "unused.duckdb")
            for truth_file in sorted(layout.ground_truth_dir.glob("*/*.json")):
                truth = load_truth(truth_file)
                video = layout.channel_dir(truth["channel"]) / f"{truth['video_id']}.mp4"
                if not video.is_file():
                    continue
                started = time.perf_counter()
                rows, sheet = chunk_video(
                    video,
                    Path(keyframes) / truth["channel"] / truth["video_id"],
                    classifier.medical_scores,
                    settings,
                    truth["duration_s"],
                )
                stage_s += time.perf_counter() - started
                decode_s += decode_seconds(video)
                video_s += truth["duration_s"]
                if sheet is not None:
                    sheets.append(sheet)
                stable = [c for c in truth["chunks"] if c["stable"]]
                predicted = [(r["start_s"], r["end_s"]) for r in rows]
                truth_b = inner_boundaries([(c["start_s"], c["end_s"]) for c in stable], truth["duration_s"])
                pred_b = inner_boundaries(predicted, truth["duration_s"])
                totals["b_tp"] += match_boundaries(pred_b, truth_b, TOLERANCE_S)
                totals["b_pred"] += len(pred_b)
                totals["b_truth"] += len(truth_b)
                for row in rows:
                    best = max(
                        stable,
                        key=lambda c: temporal_iou(
                            (row["start_s"], row["end_s"]), (c["start_s"], c["end_s"])
                        ),
                    )
                    overlap = temporal_iou((row["start_s"], row["end_s"]), (best["start_s"], best["end_s"]))
                    if row["is_medical"]:
                        totals["m_pred"] += 1
                        totals["m_tp_p"] += overlap >= 0.5 and best["is_medical"]
                for chunk in (c for c in stable if c["is_medical"]):
                    totals["m_truth"] += 1
                    hits = [
                        r
                        for r in rows
                        if temporal_iou((r["start_s"], r["end_s"]), (chunk["start_s"], chunk["end_s"])) >= 0.5
                    ]
                    totals["m_tp_r"] += any(r["is_medical"] for r in hits)
                    rect = chunk["image_rect"]
                    for row in hits:
                        found = (row["image_x"], row["image_y"], row["image_w"], row["image_h"])
                        truth_rect = (rect["x"], rect["y"], rect["w"], rect["h"])
                        ious.append(box_iou(found, truth_rect) if row["image_x"] is not None else 0.0)
    if figure is not None and sheets:
        figure.write_bytes(sheets[0])
    precision = totals["b_tp"] / max(totals["b_pred"], 1)
    recall = totals["b_tp"] / max(totals["b_truth"], 1)
    return {
        "lectures_s": video_s,
        "boundary_precision": precision,
        "boundary_recall": recall,
        "boundary_f1": 2 * precision * recall / max(precision + recall, 1e-9),
        "n_truth_boundaries": totals["b_truth"],
        "medical_precision": totals["m_tp_p"] / max(totals["m_pred"], 1),
        "medical_recall": totals["m_tp_r"] / max(totals["m_truth"], 1),
        "n_truth_medical": totals["m_truth"],
        "n_predicted_medical": totals["m_pred"],
        "region_iou_mean": sum(ious) / max(len(ious), 1),
        "region_iou_min": min(ious, default=0.0),
        "x_real_time": video_s / max(stage_s, 1e-9),
        "decode_x_real_time": video_s / max(decode_s, 1e-9),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", action="append", type=Path, help="a data root with a demo corpus")
    parser.add_argument("--model", type=Path, help="a frame classifier file (default: the data root's)")
    parser.add_argument("--figure", type=Path, help="write the first lecture's keyframe contact sheet here")
    args = parser.parse_args()
    layout = DataLayout.from_env()
    corpora = args.corpus or [layout.data_root]
    classifier = FrameClassifier.load(args.model or layout.frame_classifier_path)
    cv2.setNumThreads(2)
    result = evaluate(corpora, classifier, args.figure)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"corpora: {', '.join(map(str, corpora))} ({result['lectures_s']:.0f} s of lectures)")
    print(
        f"classifier: {args.model or layout.frame_classifier_path}, held-out accuracy "
        f"{classifier.metrics.get('held_out_accuracy', float('nan')):.3f}"
    )
    checks = [
        ("boundary F1 (±0.5 s)", result["boundary_f1"], TARGET_F1, "{:.3f}"),
        ("medical precision", result["medical_precision"], TARGET_MEDICAL, "{:.3f}"),
        ("medical recall", result["medical_recall"], TARGET_MEDICAL, "{:.3f}"),
        ("speed (x real time)", result["x_real_time"], TARGET_X_REAL_TIME, "{:.1f}"),
    ]
    for name, value, target, fmt in checks:
        verdict = "PASS" if value >= target else "FAIL"
        print(f"{name:24s} {fmt.format(value):>7s}   target >= {fmt.format(target)}   {verdict}")
    print(
        f"boundaries: precision {result['boundary_precision']:.3f}, recall {result['boundary_recall']:.3f} "
        f"of {result['n_truth_boundaries']}; medical chunks: {result['n_predicted_medical']} called, "
        f"{result['n_truth_medical']} in the truth"
    )
    print(f"image region IoU: mean {result['region_iou_mean']:.3f}, min {result['region_iou_min']:.3f}")
    print(f"decode alone: {result['decode_x_real_time']:.1f}x real time; peak RSS {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
