from collections.abc import Iterator

import dagster as dg
import polars as pl
from dagster._core.storage.tags import SENSOR_NAME_TAG

from mednarratives_assets.defs.automation import GENMEDCLIP_RETRAINING, automation_sensor
from mednarratives_assets.defs.configs import config_class, settings_from
from mednarratives_assets.defs.metadata import markdown_preview, png_image
from mednarratives_assets.defs.resources import DataPaths, ModelStore
from mednarratives_assets.stages.genmedclip_model import (
    MIN_TRAINING_PAIRS,
    ClipTrainingSettings,
    EpochReport,
    curve_png,
    train_genmedclip,
)

ClipTrainingConfig = config_class(
    ClipTrainingSettings,
    "ClipTrainingConfig",
    "GenMedCLIP's model and how it trains. A run that stops resumes at its last finished epoch. The "
    "baseline trains with the dense loss off.",
    exclude=("dense_loss",),
)
GenMedClipTraining = config_class(
    ClipTrainingSettings,
    "GenMedClipTraining",
    "As the baseline's config, plus dense_loss: the region-phrase loss on the boxes (off: plain CLIP).",
)


def _clip_model_asset(name: str, config_type: type[dg.Config], description: str):
    @dg.asset(
        name=name,
        kinds={"pytorch"},
        group_name="genmedclip",
        automation_condition=GENMEDCLIP_RETRAINING,
        description=description,
        output_required=False,  # the automation's run keeps the model in place below MIN_TRAINING_PAIRS
    )
    def clip_model(
        context: dg.AssetExecutionContext,
        config: config_type,
        aligned_pairs: pl.DataFrame,
        curated_text: pl.DataFrame,
        boxes: pl.DataFrame,
        paths: DataPaths,
        models: ModelStore,
    ) -> Iterator[dg.MaterializeResult]:
        try:
            settings = settings_from(config, ClipTrainingSettings, defaults={"dense_loss": False})
        except ValueError as exc:
            raise dg.Failure(f"{name} config: {exc}") from exc
        if aligned_pairs.height < MIN_TRAINING_PAIRS:
            too_few = (
                f"{name}: {aligned_pairs.height} aligned pairs, at least {MIN_TRAINING_PAIRS} needed to train"
            )
            if context.run.tags.get(SENSOR_NAME_TAG) != automation_sensor.name:
                raise dg.Failure(too_few)
            # A failed run at every cron tick would only say this again: the automation skips it.
            context.log.warning(f"{too_few}; not trained, and the model in place is kept")
            return
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
                curated_text,
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
        yield dg.MaterializeResult(
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
    "GenMedCLIP: an open_clip model trained on aligned_pairs of every channel, with their texts "
    "from curated_text (a pair it lacks fails the run), with the CLIP loss and a region-phrase loss "
    "on the boxes (patch tokens pooled inside each box against the phrase said while the pointer "
    "dwelt there). A share of the lectures is held out for benchmark_scores. "
    "Saved in open_clip's folder format under data/models/genmedclip/genmedclip_model/.",
)
genmedclip_no_dense_model = _clip_model_asset(
    "genmedclip_no_dense_model",
    ClipTrainingConfig,
    "The baseline: genmedclip_model's recipe without the region-phrase loss (CLIP loss only), on the "
    "same pairs and split. Saved under data/models/genmedclip/genmedclip_no_dense_model/.",
)
