"""Partition keys are channel names, checked before anything touches the disk.

The UI and GraphQL add any string as a partition; a key such as `..` once made `aligned_pairs`
delete the whole data root. Every channel step, run through Dagster's own API, must refuse such a
key before reading, writing or deleting a file.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from mednarratives_assets import defs as defs_package
from mednarratives_assets.channels import CHANNEL_NAME_RULE
from mednarratives_assets.defs.partitions import channel_partitions
from mednarratives_assets.settings import DataLayout, OutsideDataRoot
from mednarratives_tests.conftest import make_video, step_failure

HOSTILE_KEYS = {
    "parent": "..",
    "sibling": "../outside",
    "absolute": "/tmp/mednarratives-absolute-target",
    "long": "x" * 300,
    "slash": "a/b",
    "backslash": "a\\b",
    "dot": ".",
    "newline": "ok\n",
    "quote": "x'); drop table videos; --",
}


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under `root`: relative path -> (size, mtime in ns)."""
    return {
        str(path.relative_to(root)): (path.lstat().st_size, path.lstat().st_mtime_ns)
        for path in sorted(root.rglob("*"))
    }


def step_named(name: str) -> dg.AssetsDefinition:
    [step] = [step for step in channel_steps() if dg.AssetKey(name) in step.keys]
    return step


def channel_steps() -> list[dg.AssetsDefinition]:
    """Every channel-partitioned step, unbound (the tests pass the scratch root's resources)."""
    return [
        node
        for node in dg.load_assets_from_package_module(defs_package)
        if isinstance(node, dg.AssetsDefinition) and node.partitions_def == channel_partitions
    ]


@pytest.fixture
def stored_channel(layout, resources, instance, tmp_path) -> DataLayout:
    """A data root with one materialized channel, beside a folder that must never change."""
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "keep.txt").write_text("not the pipeline's")
    make_video(layout.channel_dir("neuro") / "mri.mp4", seconds=0.5)
    instance.add_dynamic_partitions(channel_partitions.name, ["neuro"])
    videos = step_named("videos")
    assert dg.materialize([videos], partition_key="neuro", resources=resources, instance=instance).success
    return layout


def test_every_channel_step_is_covered(layout):
    names = {key.path[-1] for step in channel_steps() for key in step.keys}
    assert {"video_downloads", "videos", "transcripts", "stable_chunks", "cursor_traces", "boxes"} <= names
    assert {"narratives", "aligned_pairs", "dataset_export"} <= names


@pytest.mark.parametrize("key", list(HOSTILE_KEYS.values()), ids=list(HOSTILE_KEYS))
def test_a_hostile_partition_key_fails_every_step_before_touching_the_disk(
    stored_channel, resources, instance, tmp_path, key
):
    instance.add_dynamic_partitions(channel_partitions.name, [key])
    before = tree(tmp_path)
    absolute_target = Path(HOSTILE_KEYS["absolute"])
    assert not absolute_target.exists()
    steps = channel_steps()
    for step in steps:
        result = dg.materialize(
            steps,
            selection=dg.AssetSelection.assets(*step.keys),
            partition_key=key,
            resources=resources,
            instance=instance,
            raise_on_error=False,
        )
        assert not result.success, f"{step.node_def.name} ran with partition {key!r}"
        assert "invalid channel name" in step_failure(result)
        assert tree(tmp_path) == before, f"{step.node_def.name} changed files with partition {key!r}"
    assert not absolute_target.exists()


def test_the_refusal_names_the_key_and_the_rule(stored_channel, resources, instance):
    instance.add_dynamic_partitions(channel_partitions.name, ["../outside"])
    videos = step_named("videos")
    result = dg.materialize(
        [videos], partition_key="../outside", resources=resources, instance=instance, raise_on_error=False
    )
    message = step_failure(result)
    assert "'../outside'" in message and CHANNEL_NAME_RULE in message


def test_a_channel_folder_that_leaves_the_data_root_is_refused(layout, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (layout.keyframes_dir).mkdir(parents=True)
    (layout.keyframes_dir / "neuro").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(OutsideDataRoot, match="outside the data root"):
        layout.channel_path(layout.keyframes_dir, "neuro")
    assert layout.channel_path(layout.keyframes_dir, "chest") == layout.keyframes_dir / "chest"
