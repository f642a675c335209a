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
# setting the asset fails at once and the stages keep using the model they have (the shipped one
# under mednarratives_assets/default_models until one is trained); the training jobs set it.
CONFIRM_TRAINING = {
    "confirm_training": setting(
        False,
        "Train the model (minutes). Without it the asset fails at once, so that 'Materialize all'"
        " trains nothing unasked; frame_classifier_job and cursor_detector_job set it.",
    )
}


def refuse_unconfirmed(config: dg.Config, asset: str, minutes: str, job: str) -> None:
    """Fail at once, saying why and what to do, unless the config confirms training."""
    if not config.confirm_training:
        raise dg.Failure(
            description=(
                f"{asset} was not trained: training takes {minutes} on 2 cores, so it runs only when"
                f" asked for. Meanwhile the stages use the model they have: the shipped default"
                f" (mednarratives_assets/default_models) until one is trained. To train, launch"
                f" {job}, or materialize {asset} with confirm_training: true in its config. To"
                f" run the pipeline without training, launch channel_pipeline_job or leave the"
                f" models out of the selection."
            ),
            allow_retries=False,
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

    Trains only with `confirm_training` (frame_classifier_job sets it): otherwise it fails at once.
    """
    refuse_unconfirmed(config, "frame_classifier", "about 5 minutes", "frame_classifier_job")
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
