from pathlib import Path

import dagster as dg
import polars as pl

from mednarratives_assets.defs.automation import GENMEDCLIP_RETRAINING
from mednarratives_assets.defs.checks import rows_check
from mednarratives_assets.defs.genmedclip_model import genmedclip_model, genmedclip_no_dense_model
from mednarratives_assets.defs.metadata import markdown_preview, png_image
from mednarratives_assets.defs.resources import DataPaths, ModelStore
from mednarratives_assets.settings import MEDPIX_DIR
from mednarratives_assets.stages.benchmark_scores import (
    UNTRAINED_ID,
    medpix_dev_set,
    score_models,
    scores_png,
)
from mednarratives_assets.stages.genmedclip_model import pick_device

SCORED_MODELS = ("genmedclip_model", "genmedclip_no_dense_model")
SHORT_NAMES = {
    "genmedclip_model": "dense",
    "genmedclip_no_dense_model": "no dense",
    UNTRAINED_ID: "untrained",
}


class BenchmarkConfig(dg.Config):
    """medpix_dir: a MedPix folder whose dev split is scored too (skipped when absent).
    packaged_images: score the medical images that pip packages ship too (less any trained on)."""

    medpix_dir: str = str(MEDPIX_DIR)
    packaged_images: bool = True
    device: str = "auto"


def n_images(scores: pl.DataFrame, benchmark: str) -> int:
    """Images scored on one benchmark (its image-to-text rows count them); 0 when not scored."""
    counts = scores.filter(pl.col("benchmark") == benchmark, pl.col("task") == "image_to_text")["n"]
    return int(counts.max()) if counts.len() else 0


@dg.asset(
    deps=[genmedclip_model, genmedclip_no_dense_model],
    kinds={"duckdb", "polars", "pytorch"},
    group_name="genmedclip",
    automation_condition=GENMEDCLIP_RETRAINING,
    check_specs=[
        dg.AssetCheckSpec(
            "held_out_never_trained_on",
            asset="benchmark_scores",
            description="No held-out pair was used to train any of the scored models.",
        )
    ],
)
def benchmark_scores(
    context: dg.AssetExecutionContext,
    config: BenchmarkConfig,
    aligned_pairs: pl.DataFrame,
    curated_text: pl.DataFrame,
    paths: DataPaths,
    models: ModelStore,
):
    """Zero-shot classification (domain; modality and body region) and image-text retrieval
    (R@1, R@5, R@10 both ways) of GenMedCLIP and its baselines: the same recipe without the dense
    loss, and the untrained model. Scored on the held-out lectures' pairs (with their texts from
    curated_text, as in training), on MedPix's dev split and on the medical images that pip
    packages ship. Table `benchmark_scores`, documented in docs/schema.md."""
    saved = {name: models.load(name, "benchmark_scores") for name in SCORED_MODELS}
    folders = {name: model.folder for name, model in saved.items()}
    trainings = {name: model.training for name, model in saved.items()}
    held_out = trainings["genmedclip_model"]["held_out_pair_ids"]
    medpix = medpix_dev_set(Path(config.medpix_dir)) if config.medpix_dir else None
    if medpix is None:
        context.log.info(f"no MedPix dev split at {config.medpix_dir!r}: it is not scored")
    try:
        scores = score_models(
            paths.layout.data_root,
            aligned_pairs,
            curated_text,
            folders,
            medpix,
            pick_device(config.device),
            context.log.info,
            packaged_images=config.packaged_images,
        )
    except ValueError as exc:  # an image that cannot be read, or a held-out pair without curated text
        raise dg.Failure(f"benchmark_scores: {exc}") from exc
    leaked = pl.DataFrame(
        [
            {"model": name, "pair_id": pair_id}
            for name, training in trainings.items()
            for pair_id in sorted(set(training["train_pair_ids"]) & set(held_out))
        ],
        schema={"model": pl.String, "pair_id": pl.String},
    )
    headline = (
        scores.filter(pl.col("domain") == "all")
        .with_columns(
            pl.concat_str(
                "benchmark", pl.col("task").str.replace("zero_shot_", ""), "metric", separator=" "
            ).alias("score"),
            pl.col("model_id").replace(SHORT_NAMES),
            pl.col("value").round(3),
        )
        .pivot("model_id", index=["score", "n"], values="value")
    )
    shown = [c for c in ("score", *SHORT_NAMES.values(), "n") if c in headline.columns]  # none without scores
    yield dg.Output(
        scores,
        metadata={
            "dagster/row_count": scores.height,
            "n_held_out_pairs": len(held_out),
            "n_packaged_images": n_images(scores, "packaged_images"),
            "scores": markdown_preview(headline, shown, max_rows=100),
            "scores_chart": png_image(scores_png(scores), "overall scores by model"),
        },
    )
    yield rows_check("held_out_never_trained_on", leaked, ["model", "pair_id"], "leaked")
