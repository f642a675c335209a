import dagster as dg

from mednarratives_assets.defs.video_downloads import video_downloads
from mednarratives_assets.defs.videos import videos

ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=dg.AssetSelection.assets(video_downloads, videos),
    description="Fetch a channel's URLs and probe every video file it holds.",
)

channel_pipeline_job = dg.define_asset_job(
    "channel_pipeline_job",
    selection=dg.AssetSelection.all(),
    description="Every channel-partitioned asset, from downloads to the last stage, for one channel.",
)
