import tempfile
from pathlib import Path

import dagster as dg

from mednarratives_assets.defs.configs import config_class, settings_from
from mednarratives_assets.defs.frame_classifier import CONFIRM_TRAINING, EXTRA_IMAGES_DIR, model_in_use
from mednarratives_assets.defs.metadata import png_image, rounded_metadata
from mednarratives_assets.defs.resources import DataPaths, ModelStore
from mednarratives_assets.stages.cursor_detector import (
    DetectorTrainingSettings,
    held_out_sheet,
    train_cursor_detector,
)
from mednarratives_assets.stages.frame_classifier import (
    pictures_by_modality,
    training_images,
    usable_pictures,
)

CursorDetectorTraining = config_class(
    DetectorTrainingSettings,
    "CursorDetectorTraining",
    "How much to train. The defaults, the shipped model's, take about 20 minutes on 2 cores.",
    extra={**EXTRA_IMAGES_DIR, **CONFIRM_TRAINING},
)


@dg.asset(kinds={"pytorch"}, group_name="cursor")
def cursor_detector(
    context: dg.AssetExecutionContext, config: CursorDetectorTraining, paths: DataPaths, models: ModelStore
) -> dg.MaterializeResult:
    """A YOLO pose model (one keypoint: the hotspot) that finds the mouse pointer in 128 px crops.

    Built from `model_yaml` without pretrained weights and trained offline on generated crops:
    pointers of many styles on medical slides and other frames, compressed like video. Scored on
    crops from other seeds: pose and box mAP, hotspot error, misses and false alarms. Saved as
    data/models/cursor_detector.pt, with cursor_detector.json beside it.

    Trains only with `confirm_training` (cursor_detector_job sets it): otherwise it records the
    model in use (the shipped default until one is trained) and trains nothing.
    """
    if not config.confirm_training:
        return model_in_use(context, models, "cursor_detector", "about 20 minutes", "cursor_detector_job")
    try:
        settings = settings_from(config, DetectorTrainingSettings)
    except ValueError as exc:
        raise dg.Failure(f"cursor_detector config: {exc}") from exc
    layout, path = paths.layout, models.path("cursor_detector")
    pictures = pictures_by_modality(
        usable_pictures(training_images(config.extra_images_dir or None), context.log.warning), settings.seed
    )
    layout.cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cursor-detector-", dir=layout.cache_dir) as work:
        detector, held_out = train_cursor_detector(settings, pictures, Path(work), log=context.log.info)
        detector.save(path, settings)
        sheet = held_out_sheet(detector, held_out)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            **rounded_metadata(detector.metrics),
            "held_out_crops": png_image(sheet, "held-out crops: truth green, detection red"),
        }
    )
