"""Boxes, phrase alignment, captions and domains against the demo corpus's ground truth.

    python benchmarks/narratives.py [--corpus DATA_ROOT ...]

Reads a materialized corpus (`mednarratives demo` makes and materializes one; its upstream tables
stable_chunks, cursor_traces and transcript_words have their own benchmarks), then runs the
narratives, boxes and aligned_pairs stages on them with three box methods:
- ours: dwells found in time, outliers dropped, each box sized by the image structure under it;
- ours, trace only: the same dwells boxed by the trace alone (snap_to_image off);
- reference: the Quilt-LLaVA recipe (time-decayed KMeans, IQR outliers, area 0.02 to 0.7).
Scores are those of `evaluation.stage_scores.NarrativeScore`. Targets: 70% of ROIs at IoU >= 0.5 (ours) and
caption recall >= 0.8.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

import polars as pl

from mednarratives_assets.asr.vocabulary import MedicalVocabulary
from mednarratives_assets.evaluation.corpus import Lecture, Stopwatch, materialized_tables, run_channels
from mednarratives_assets.evaluation.report import Check, print_checks
from mednarratives_assets.evaluation.stage_scores import NarrativeScore
from mednarratives_assets.evaluation.style_groups import StyleGroups, print_by_split
from mednarratives_assets.stages.aligned_pairs import PairSettings, pair_channel
from mednarratives_assets.stages.boxes import BoxSettings, box_channel, reference_box_channel
from mednarratives_assets.stages.narratives import NarrativeSettings, narrate_channel
from mednarratives_assets.tables import medical_chunks

TARGET_IOU_AT_HALF = 0.7
TARGET_CAPTION_RECALL = 0.85
TARGET_PAIRED = 0.95
TABLES = ("videos", "stable_chunks", "cursor_traces", "transcript_words")


def evaluate(corpora: list[Path]) -> tuple[dict[str, NarrativeScore], StyleGroups[NarrativeScore], dict]:
    groups = StyleGroups(NarrativeScore)  # ours, overall and by style
    scores = {
        "ours": groups.overall,
        "ours, trace only": NarrativeScore(),
        "reference (Quilt-LLaVA)": NarrativeScore(),
    }
    vocabulary = MedicalVocabulary()
    tables = {corpus: materialized_tables(corpus, TABLES) for corpus in corpora}
    with tempfile.TemporaryDirectory() as scratch:

        def box_and_score(lectures: list[Lecture], stopwatch: Stopwatch) -> None:
            """A channel through the three box methods, narratives and aligned_pairs; each lecture scored."""
            corpus, channel = lectures[0].corpus, lectures[0].truth["channel"]
            of = {t: frame.filter(pl.col("channel") == channel) for t, frame in tables[corpus].items()}
            args = (of["stable_chunks"], of["cursor_traces"], of["transcript_words"])
            methods = {}
            with stopwatch.timed("ours"):
                methods["ours"] = box_channel(corpus, *args, BoxSettings(), log=lambda _: None)
            with stopwatch.timed("ours, trace only"):
                trace_only = replace(BoxSettings(), snap_to_image=False)
                methods["ours, trace only"] = box_channel(corpus, *args, trace_only, log=lambda _: None)
            with stopwatch.timed("reference (Quilt-LLaVA)"):
                methods["reference (Quilt-LLaVA)"] = reference_box_channel(*args)
            narratives = narrate_channel(of["videos"], *args, NarrativeSettings())
            pairs = pair_channel(
                corpus,
                Path(scratch) / corpus.name / channel,
                of["stable_chunks"],
                narratives,
                methods["ours"],
                of["cursor_traces"],
                vocabulary,
                PairSettings(),
                None,
                log=lambda _: None,
            ).pairs
            for lecture in lectures:
                video = pl.col("video_id") == lecture.truth["video_id"]
                chunks = medical_chunks(of["stable_chunks"]).filter(video).to_dicts()
                by_chunk = {p["chunk_index"]: p for p in pairs.filter(video).to_dicts()}
                for name, found in methods.items():
                    boxes = found.filter(video).to_dicts() if found.height else []
                    if name == "ours":
                        groups.add(lecture.truth, lecture.truth, chunks, boxes, by_chunk)
                    else:
                        scores[name].add(lecture.truth, chunks, boxes, by_chunk)

        run = run_channels(corpora, box_and_score)
    return scores, groups, {"n_lectures": len(run.lectures), "seconds": run.seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", action="append", type=Path, help="a materialized demo corpus's data root")
    args = parser.parse_args()
    corpora = args.corpus or [Path(__file__).resolve().parents[1] / "data"]
    scores, groups, run = evaluate(corpora)
    ours = scores["ours"]
    corpus = ", ".join(map(str, corpora))
    print(f"corpus: {corpus}: {run['n_lectures']} lectures, {len(ours.roi_ious)} truth ROIs")
    header = (
        ("mean IoU", 9),
        ("IoU>=0.5", 10),
        ("aligned", 9),
        ("box precision", 15),
        ("boxes", 7),
        ("seconds", 9),
    )
    print(f"{'method':<26}" + "".join(f"{name:>{width}}" for name, width in header))
    for name, score in scores.items():
        print(
            f"{name:<26}{score.mean_iou:>9.3f}{score.iou_at_least(0.5):>10.3f}{score.alignment_accuracy:>9.3f}"
            f"{score.box_precision:>15.3f}{score.n_boxes:>7}{run['seconds'][name]:>9.2f}"
        )
    print(
        f"caption recall {ours.caption_recall:.3f} ({ours.recalled_words}/{ours.truth_words} truth words); "
        f"domain accuracy {ours.domain_accuracy:.3f} ({ours.domains_right}/{ours.domains_total} pairs)"
    )

    def print_split(split: str, score: NarrativeScore) -> None:
        print(
            f"{len(score.roi_ious)} ROIs, {score.medical_slides} still medical slides; mean IoU "
            f"{score.mean_iou:.3f}; aligned {score.alignment_accuracy:.3f}"
        )
        checks = [
            Check("ROIs at IoU >= 0.5 (ours)", score.iou_at_least(0.5), TARGET_IOU_AT_HALF),
            Check("caption recall", score.caption_recall, TARGET_CAPTION_RECALL),
            Check("medical slides with a pair", score.paired_share, TARGET_PAIRED),
        ]
        print_checks(checks, name_width=28, value_width=7)

    print_by_split(groups, print_split)
    groups.print_factor_table(
        {
            "ROIs": lambda s: len(s.roi_ious),
            "IoU >= 0.5": lambda s: s.iou_at_least(0.5),
            "caption recall": lambda s: s.caption_recall,
            "paired": lambda s: s.paired_share,
        },
        "ours",
    )


if __name__ == "__main__":
    main()
