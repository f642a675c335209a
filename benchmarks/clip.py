"""GenMedCLIP against its baselines: trains the model with and without the dense loss, then prints
benchmark_scores for both and for the untrained model, with training speed.

Training pairs come from materialized corpora (their aligned_pairs, curated_text and boxes
tables) and, when MedPix is beside the checkout, from narrated MedPix train images
(demo/narrated_pairs.py: what a flawless pipeline run over lectures of those images would give,
with the rules' curated texts, at a scale that rendering videos on 2 cores cannot reach). Held
out: the lectures GenMedCLIP never trained on, MedPix dev, and the medical images that pip
packages ship (`packaged_images`, less any trained on).

    python benchmarks/clip.py                                  # data/ plus 1,000 narrated MedPix images
    python benchmarks/clip.py --seeds 0 1 2                    # mean and spread over three trainings
    python benchmarks/clip.py --corpus /tmp/medpix_data --medpix-narrations 0 --epochs 10
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import duckdb
import polars as pl

from mednarratives_assets.demo.narrated_pairs import narrated_pairs
from mednarratives_assets.evaluation.report import markdown_table
from mednarratives_assets.settings import MEDPIX_DIR, REPO_ROOT
from mednarratives_assets.stages.benchmark_scores import medpix_dev_set, score_models, scores_png
from mednarratives_assets.stages.curated_text import (
    CURATED_TEXT_SCHEMA,
    AnswerCache,
    CurationSettings,
    curate_channel,
)
from mednarratives_assets.stages.genmedclip_model import ClipTrainingSettings, train_genmedclip
from mednarratives_assets.synthetic.medical_images import folder_images

PAIR_COLUMNS = [
    "channel",
    "pair_id",
    "video_id",
    "chunk_index",
    "image_path",
    "image_sha256",
    "phash",
    "corrected_caption",
    "medical_text",
    "roi_text",
    "domain",
]
BOX_COLUMNS = [
    "channel",
    "video_id",
    "chunk_index",
    "box_index",
    "x1_norm",
    "y1_norm",
    "x2_norm",
    "y2_norm",
    "phrase",
]


def corpus_tables(root: Path) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """A materialized corpus's pairs, curated texts and boxes, image paths made absolute so corpora
    can be pooled."""
    with duckdb.connect(str(root / "mednarratives.duckdb"), read_only=True) as con:
        pairs = con.sql("FROM aligned_pairs").pl().select(PAIR_COLUMNS)
        curated = con.sql("FROM curated_text").pl().select(list(CURATED_TEXT_SCHEMA))
        boxes = con.sql("FROM boxes").pl().select(BOX_COLUMNS)
    tagged = (pl.lit(f"{root.name}:") + pl.col("channel")).alias("channel")
    return (
        pairs.with_columns(
            tagged, pl.col("image_path").map_elements(lambda p: str(root / p), return_dtype=pl.String)
        ),
        curated.with_columns(tagged),
        boxes.with_columns(tagged),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--corpus", type=Path, action="append", help="materialized data roots (default: data/)"
    )
    parser.add_argument("--medpix-narrations", type=int, default=1000, help="narrated MedPix train images")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--model-size", default="tiny")
    parser.add_argument("--text-tower", default="clip", help="clip, or minilm (the pretrained MiniLM)")
    parser.add_argument("--lock-text", action="store_true", help="freeze the MiniLM text tower")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="one training per seed")
    parser.add_argument("--figure", type=Path, help="write the mean overall scores as a bar chart (PNG)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="clip-benchmark-"))
    frames = [corpus_tables(root.resolve()) for root in args.corpus or [REPO_ROOT / "data"]]
    if args.medpix_narrations and (MEDPIX_DIR / "metadata.jsonl").is_file():
        images = folder_images(MEDPIX_DIR)[: args.medpix_narrations]
        began = time.perf_counter()
        pairs, boxes = narrated_pairs(images, work, "medpix-narrated", seed=0)
        print(
            f"narrated {pairs.height} MedPix train images ({boxes.height} boxes) "
            f"in {time.perf_counter() - began:.0f} s"
        )
        rules = curate_channel(pairs, CurationSettings(), frozenset(), AnswerCache(None)).table
        frames.append((pairs.select(PAIR_COLUMNS), rules, boxes.select(BOX_COLUMNS)))
    pairs, curated, boxes = (pl.concat(parts, how="vertical_relaxed") for parts in zip(*frames, strict=True))
    print(f"{pairs.height} pairs, {boxes.height} boxes, {pairs['video_id'].n_unique()} lectures")

    frames = [train_and_score(work, pairs, curated, boxes, args, seed) for seed in args.seeds]
    scores = pl.concat(frames)
    index = ["benchmark", "task", "domain", "metric"]
    summary = scores.group_by([*index, "model_id"], maintain_order=True).agg(
        pl.col("n").mean().round().cast(pl.Int64),
        pl.col("value").mean().alias("mean"),
        pl.col("value").std().alias("std"),
    )
    print(f"\nbenchmark_scores, mean over seeds {args.seeds} (each seed draws its own held-out lectures)")
    print(markdown_table(summary.pivot("model_id", index=[*index, "n"], values="mean")))
    if len(args.seeds) > 1:
        print("\nstandard deviation over the seeds")
        print(markdown_table(summary.pivot("model_id", index=[*index, "n"], values="std")))
    if args.figure:
        args.figure.write_bytes(scores_png(summary.rename({"mean": "value"})))
        print(f"wrote {args.figure}")


def train_and_score(
    work: Path, pairs: pl.DataFrame, curated: pl.DataFrame, boxes: pl.DataFrame, args, seed: int
) -> pl.DataFrame:
    """Both models trained with one seed, then scored with the untrained one; rows of benchmark_scores."""
    models = {}
    for name, dense in (("genmedclip_model", True), ("genmedclip_no_dense_model", False)):
        settings = ClipTrainingSettings(
            model_size=args.model_size,
            text_tower=args.text_tower,
            lock_text=args.lock_text,
            dense_loss=dense,
            epochs=args.epochs,
            seed=seed,
            device=args.device,
        )
        began = time.perf_counter()
        folder = work / f"{name}-{seed}"
        trained = train_genmedclip(
            work, pairs, curated, boxes, settings, folder, folder.with_suffix(".state.pt"), log=print
        )
        print(
            f"{name}, seed {seed}: {trained.n_train} training pairs, "
            f"{len(trained.held_out_pair_ids)} held out, "
            f"{trained.images_per_s:.0f} images/s on {trained.device}, {time.perf_counter() - began:.0f} s; "
            f"CLIP loss {trained.curve[0]['clip_loss']:.3f} -> {trained.curve[-1]['clip_loss']:.3f}"
        )
        models[name] = trained
    folders = {name: trained.folder for name, trained in models.items()}
    device = models["genmedclip_model"].device
    return score_models(
        work, pairs, curated, folders, medpix_dev_set(MEDPIX_DIR), device, log=lambda message: None
    )


if __name__ == "__main__":
    main()
