import dagster as dg

from mednarratives_assets.defs.cursor_detector import cursor_detector
from mednarratives_assets.defs.frame_classifier import frame_classifier
from mednarratives_assets.defs.video_downloads import video_downloads
from mednarratives_assets.defs.videos import videos

ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=dg.AssetSelection.assets(video_downloads, videos),
    description="Fetch a channel's URLs and probe every video file it holds.",
)

channel_pipeline_job = dg.define_asset_job(
    "channel_pipeline_job",
    selection=dg.AssetSelection.all()
    - dg.AssetSelection.assets(frame_classifier, cursor_detector)
    - dg.AssetSelection.groups("genmedclip", "dataset", "publish"),
    description="Every channel-partitioned asset, from downloads to the last stage, for one channel.",
)

frame_classifier_job = dg.define_asset_job(
    "frame_classifier_job",
    selection=dg.AssetSelection.assets(frame_classifier),
    description="Train the frame classifier that stable_chunks uses (about 5 minutes; not partitioned).",
    config={"ops": {"frame_classifier": {"config": {"confirm_training": True}}}},
)

cursor_detector_job = dg.define_asset_job(
    "cursor_detector_job",
    selection=dg.AssetSelection.assets(cursor_detector),
    description="Train the cursor detector that cursor_traces uses (about 20 minutes; not partitioned).",
    config={"ops": {"cursor_detector": {"config": {"confirm_training": True}}}},
)

genmedclip_job = dg.define_asset_job(
    "genmedclip_job",
    selection=dg.AssetSelection.groups("genmedclip"),
    description="Train GenMedCLIP and its no-dense baseline on every channel's pairs, then score them.",
)

dataset_job = dg.define_asset_job(
    "dataset_job",
    selection=dg.AssetSelection.groups("dataset"),
    description="Every channel's pairs as one dataset, split by lecture, and its statistics (unpartitioned).",
)
