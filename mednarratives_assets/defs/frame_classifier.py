import dagster as dg

from mednarratives_assets.defs.configs import config_class, settings_from
from mednarratives_assets.defs.metadata import rounded_metadata
from mednarratives_assets.defs.resources import ModelStore
from mednarratives_assets.settings import MEDPIX_DIR
from mednarratives_assets.stage_settings import setting
from mednarratives_assets.stages.frame_classifier import (
    ClassifierTrainingSettings,
    train_frame_classifier,
    training_images,
)

# A folder of the user's own medical images, with metadata.jsonl; its dev split joins the packaged images.
EXTRA_IMAGES_DIR = {
    "extra_images_dir": setting(
        str(MEDPIX_DIR),
        "A folder with metadata.jsonl, such as MedPix, whose dev split is used too (if present).",
    )
}

# Training takes minutes: "Materialize all" in the UI must not start it unasked. Without this
# setting the asset trains nothing and records the model the stages use (the shipped one under
# mednarratives_assets/default_models until one is trained), so the assets after it still run;
# the training jobs set it.
CONFIRM_TRAINING = {
    "confirm_training": setting(
        False,
        "Train the model (minutes). Without it the asset only records the model in use, so that"
        " 'Materialize all' trains nothing unasked; frame_classifier_job and cursor_detector_job set it.",
    )
}


def model_in_use(
    context: dg.AssetExecutionContext, models: ModelStore, asset: str, minutes: str, job: str
) -> dg.MaterializeResult:
    """Train nothing: record the model the stages use and its held-out figures, and say how to train."""
    source = models.source(asset)
    context.log.info(
        f"{asset}: not trained (training takes {minutes} on 2 cores and runs only when asked for); the"
        f" stages use {source}. To train, launch {job}, or materialize {asset} with confirm_training: true."
    )
    figures = {k: v for k, v in models.open(asset).metrics.items() if isinstance(v, int | float)}
    return dg.MaterializeResult(
        metadata=rounded_metadata(
            {"path": dg.MetadataValue.path(str(source)), "trained_now": False, "to_train": job, **figures}
        )
    )


FrameClassifierTraining = config_class(
    ClassifierTrainingSettings,
    "FrameClassifierTraining",
    "How much to train. The defaults, the shipped model's, take about 5 minutes on 2 cores.",
    extra={**EXTRA_IMAGES_DIR, **CONFIRM_TRAINING},
)


@dg.asset(kinds={"pytorch"}, group_name="chunks")
def frame_classifier(
    context: dg.AssetExecutionContext, config: FrameClassifierTraining, models: ModelStore
) -> dg.MaterializeResult:
    """A small CNN that tells keyframes showing a medical image from everything else, trained offline.

    Positives are medical images from pip packages (plus the dev split of `extra_images_dir`, such
    as MedPix, when that folder exists) on generated slides; negatives are generated text slides,
    diagrams, charts, presenters, desktops and photos. Accuracy is measured on medical images and
    frames it never saw. Saved as data/models/frame_classifier.pt.

    Trains only with `confirm_training` (frame_classifier_job sets it): otherwise it records the
    model in use (the shipped default until one is trained) and trains nothing.
    """
    if not config.confirm_training:
        return model_in_use(context, models, "frame_classifier", "about 5 minutes", "frame_classifier_job")
    try:
        settings = settings_from(config, ClassifierTrainingSettings)
    except ValueError as exc:
        raise dg.Failure(f"frame_classifier config: {exc}") from exc
    images = training_images(config.extra_images_dir or None)
    classifier = train_frame_classifier(images, settings, log=context.log.info)
    path = models.path("frame_classifier")
    classifier.save(path)
    metrics = classifier.metrics
    return dg.MaterializeResult(
        metadata=rounded_metadata(
            {
                "path": dg.MetadataValue.path(str(path)),
                "held_out_accuracy": metrics["held_out_accuracy"],
                "held_out_precision": metrics["held_out_precision"],
                "held_out_recall": metrics["held_out_recall"],
                "held_out_accuracy_by_kind": metrics["held_out_accuracy_by_kind"],
                "n_train_frames": metrics["n_train_frames"],
                "n_held_out_frames": metrics["n_held_out_frames"],
                "n_train_images": metrics["n_train_images"],
                "n_held_out_images": metrics["n_held_out_images"],
                "train_seconds": metrics["train_seconds"],
                "image_sources": metrics["image_sources"],
            }
        )
    )
