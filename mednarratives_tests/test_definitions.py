"""The code location loads, every job resolves, and the instance config is what we document."""

from __future__ import annotations

import importlib

import dagster as dg
import yaml

from mednarratives_assets.settings import INSTANCE_CONFIG, REPO_ROOT, DataLayout


def test_definitions_load_and_every_job_resolves():
    from mednarratives_assets.definitions import defs

    jobs = {job.name: job for job in defs.resolve_all_job_defs()}
    assert "ingest_job" in jobs
    for name in jobs:
        assert isinstance(defs.resolve_job_def(name), dg.JobDefinition)
    ingest = jobs["ingest_job"]
    assert ingest.partitions_def.name == "channel"
    assert {key.to_user_string() for key in ingest.asset_layer.executable_asset_keys} == {
        "video_downloads",
        "videos",
    }
    repo = defs.get_repository_def()
    keys = {key.to_user_string() for key in repo.asset_graph.get_all_asset_keys()}
    assert {"videos", "video_downloads"} <= keys
    assert repo.get_sensor_def("new_video_sensor").job_name == "channel_pipeline_job"
    videos = repo.asset_graph.get(dg.AssetKey("videos"))
    assert isinstance(videos.partitions_def, dg.DynamicPartitionsDefinition)
    assert videos.partitions_def.name == "channel"
    assert dg.AssetKey("video_downloads") in videos.parent_keys
    for table in ("transcripts", "transcript_words", "transcript_segments"):
        node = repo.asset_graph.get(dg.AssetKey(table))
        assert node.partitions_def == videos.partitions_def
        assert node.parent_keys == {dg.AssetKey("videos")}


def test_the_narratives_group_has_its_lineage_and_runs_with_every_channel():
    from mednarratives_assets.definitions import defs

    graph = defs.get_repository_def().asset_graph
    parents = {
        "narratives": {"videos", "stable_chunks", "cursor_traces", "transcript_words"},
        "boxes": {"videos", "stable_chunks", "cursor_traces", "transcript_words"},
        "video_filter": {"videos", "transcripts", "transcript_words", "stable_chunks"},
        "aligned_pairs": {
            "videos",
            "video_filter",
            "stable_chunks",
            "narratives",
            "boxes",
            "cursor_traces",
            "cursor_detector",
        },
        "dataset_export": {"aligned_pairs", "curated_text", "narratives", "boxes"},
        "curated_text": {"aligned_pairs"},
        "medical_entities": {"curated_text"},
    }
    for asset, expected in parents.items():
        node = graph.get(dg.AssetKey(asset))
        assert {key.to_user_string() for key in node.parent_keys} == expected
        assert node.partitions_def.name == "channel" and node.group_name == "narratives"
    pipeline = defs.resolve_job_def("channel_pipeline_job")
    assert set(parents) <= {key.to_user_string() for key in pipeline.asset_layer.executable_asset_keys}


def test_the_genmedclip_group_reads_every_channel_and_stays_out_of_the_channel_pipeline():
    from mednarratives_assets.definitions import defs

    graph = defs.get_repository_def().asset_graph
    parents = {
        "genmedclip_model": {"aligned_pairs", "curated_text", "boxes"},
        "genmedclip_no_dense_model": {"aligned_pairs", "curated_text", "boxes"},
        "benchmark_scores": {
            "aligned_pairs",
            "curated_text",
            "genmedclip_model",
            "genmedclip_no_dense_model",
        },
    }
    for asset, expected in parents.items():
        node = graph.get(dg.AssetKey(asset))
        assert {key.to_user_string() for key in node.parent_keys} == expected
        assert node.partitions_def is None and node.group_name == "genmedclip"
    clip_job = defs.resolve_job_def("genmedclip_job")
    assert {key.to_user_string() for key in clip_job.asset_layer.executable_asset_keys} == set(parents)
    pipeline = defs.resolve_job_def("channel_pipeline_job")
    assert set(parents).isdisjoint(key.to_user_string() for key in pipeline.asset_layer.executable_asset_keys)


def test_dataset_statistics_reads_every_channel_in_the_dataset_job():
    from mednarratives_assets.definitions import defs

    node = defs.get_repository_def().asset_graph.get(dg.AssetKey("dataset_statistics"))
    assert {key.to_user_string() for key in node.parent_keys} == {
        "videos",
        "transcript_words",
        "stable_chunks",
        "narratives",
        "boxes",
        "video_filter",
        "aligned_pairs",
        "medical_entities",
    }
    assert node.partitions_def is None and node.group_name == "dataset"
    job = defs.resolve_job_def("dataset_job")
    assert {key.to_user_string() for key in job.asset_layer.executable_asset_keys} == {
        "dataset_statistics",
        "dataset_export_all",
    }
    for other in ("channel_pipeline_job", "genmedclip_job"):
        keys = defs.resolve_job_def(other).asset_layer.executable_asset_keys
        assert dg.AssetKey("dataset_statistics") not in keys


def test_the_merged_export_reads_every_channel_and_runs_in_the_dataset_job():
    from mednarratives_assets.definitions import defs

    node = defs.get_repository_def().asset_graph.get(dg.AssetKey("dataset_export_all"))
    assert {key.to_user_string() for key in node.parent_keys} == {
        "aligned_pairs",
        "curated_text",
        "narratives",
        "boxes",
        "dataset_statistics",
        "videos",
    }
    assert node.partitions_def is None and node.group_name == "dataset"
    for job, runs_it in (("dataset_job", True), ("channel_pipeline_job", False), ("genmedclip_job", False)):
        keys = defs.resolve_job_def(job).asset_layer.executable_asset_keys
        assert (dg.AssetKey("dataset_export_all") in keys) is runs_it, job


def test_data_root_setting_moves_the_database(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDNARRATIVES_DATA_ROOT", str(tmp_path / "elsewhere"))
    monkeypatch.delenv("MEDNARRATIVES_DUCKDB", raising=False)
    layout = DataLayout.from_env()
    assert layout.data_root == tmp_path / "elsewhere"
    assert layout.duckdb_path == tmp_path / "elsewhere" / "mednarratives.duckdb"
    assert layout.videos_dir == tmp_path / "elsewhere" / "videos"

    monkeypatch.delenv("MEDNARRATIVES_DATA_ROOT")
    assert DataLayout.from_env().duckdb_path == REPO_ROOT / "data" / "mednarratives.duckdb"


def test_workspace_points_at_the_definitions_module():
    workspace = yaml.safe_load((REPO_ROOT / "workspace.yaml").read_text())
    [location] = workspace["load_from"]
    module = importlib.import_module(location["python_module"]["module_name"])
    assert isinstance(module.defs, dg.Definitions)


def test_instance_config_turns_telemetry_off_and_runs_two_channels_at_once(tmp_path, monkeypatch):
    home = REPO_ROOT / "data" / "dagster_home"
    assert (home / "dagster.yaml").resolve() == INSTANCE_CONFIG == REPO_ROOT / "dagster.yaml"
    config = yaml.safe_load(INSTANCE_CONFIG.read_text())
    assert config["telemetry"]["enabled"] is False
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    (tmp_path / "dagster.yaml").write_text(INSTANCE_CONFIG.read_text())
    with dg.DagsterInstance.get() as instance:
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 2
