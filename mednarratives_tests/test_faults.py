"""System faults: an OS error fails the step and keeps what was stored; runs of one channel take turns.

The stages' own tests show each stage lets an OS error through; these show what the wiring makes
of it, and that two Dagster instances working on one channel never interleave a stage.
"""

import errno
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import polars as pl
import pytest

from mednarratives_assets.atomic_files import replaced_folder, write_file
from mednarratives_assets.channel_locks import ChannelBusy, channel_lock, database_turn
from mednarratives_assets.defs.partitions import channel_asset
from mednarratives_assets.defs.resources import DataPaths
from mednarratives_assets.mp4 import write_mp4
from mednarratives_assets.stages.frame_classifier import FrameClassifier, _FrameNet
from mednarratives_tests.conftest import step_failure

DISK_FULL = {"on": False}


@channel_asset("tests")
def scores(context: dg.AssetExecutionContext, paths: DataPaths) -> pl.DataFrame:
    target = paths.layout.channel_path(paths.layout.data_root / "scores", context.partition_key)
    with replaced_folder(target) as staging:
        if DISK_FULL["on"]:
            raise OSError(errno.ENOSPC, "No space left on device", str(staging / "part-0.json"))
        (staging / "part-0.json").write_text("{}")
    return pl.DataFrame({"channel": [context.partition_key] * 3, "score": [1.0, 2.0, 3.0]})


def stored_scores(layout) -> int:
    with duckdb.connect(str(layout.duckdb_path), read_only=True) as con:
        return con.sql("select count(*) from scores").fetchone()[0]


def test_a_full_disk_fails_the_step_naming_the_path_and_keeps_rows_and_files(
    layout, resources, instance, monkeypatch
):
    instance.add_dynamic_partitions("channel", ["neuro"])
    assert dg.materialize([scores], partition_key="neuro", resources=resources, instance=instance).success
    monkeypatch.setitem(DISK_FULL, "on", True)
    result = dg.materialize(
        [scores], partition_key="neuro", resources=resources, instance=instance, raise_on_error=False
    )
    assert not result.success
    message = step_failure(result)
    assert "No space left on device" in message and "part-0.json" in message
    assert "stored rows and files are unchanged" in message
    assert stored_scores(layout) == 3
    folder = layout.data_root / "scores"
    assert [p.name for p in folder.iterdir()] == ["neuro"], "the temporary folder was left behind"
    assert (folder / "neuro" / "part-0.json").read_text() == "{}"


def test_a_new_folder_replaces_the_old_whole_and_a_failed_one_leaves_it(tmp_path):
    target = tmp_path / "keyframes" / "lecture"
    with replaced_folder(target) as staging:
        (staging / "chunk-000.png").write_bytes(b"old")
    with pytest.raises(OSError), replaced_folder(target) as staging:
        (staging / "chunk-000.png").write_bytes(b"new")
        raise OSError(errno.EIO, "Input/output error")
    assert [p.name for p in target.parent.iterdir()] == ["lecture"]
    assert (target / "chunk-000.png").read_bytes() == b"old"
    with replaced_folder(target) as staging:
        (staging / "chunk-001.png").write_bytes(b"new")
    assert sorted(p.name for p in target.iterdir()) == ["chunk-001.png"]


def test_temporaries_of_a_killed_writer_are_cleared_by_the_next_one(tmp_path):
    target = tmp_path / "narratives.jsonl"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    abandoned = tmp_path / f".narratives.jsonl.{dead.stdout.strip()}-x1y2.partial"
    abandoned.write_text("half")
    mine = tmp_path / f".narratives.jsonl.{os.getpid()}-a1b2.partial"  # a live writer's: kept
    mine.write_text("in progress")
    write_file(target, "whole\n")
    assert target.read_text() == "whole\n"
    assert not abandoned.exists() and mine.exists()


def test_a_lock_held_too_long_fails_naming_the_holder(tmp_path):
    lock = tmp_path / "locks" / "stable_chunks" / "neuro.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; "
            "from mednarratives_assets.channel_locks import channel_lock\n"
            "with channel_lock(Path(sys.argv[1]), 'run abcd1234 (stable_chunks)'):\n"
            "    print('held', flush=True); time.sleep(60)",
            str(lock),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        waits: list[str] = []
        with pytest.raises(ChannelBusy, match=r"run abcd1234 \(stable_chunks\) \(pid \d+\)"):
            with channel_lock(lock, "run ffff0000 (stable_chunks)", wait_s=1.0, log=waits.append):
                pass
        assert waits and "waiting for run abcd1234" in waits[0]
    finally:
        holder.kill()
        holder.wait()
    with channel_lock(lock, "run ffff0000 (stable_chunks)", wait_s=1.0):  # free once the holder is gone
        pass


def test_readers_share_their_turn_with_the_database_and_a_writer_waits_for_them(tmp_path):
    database = tmp_path / "mednarratives.duckdb"
    with database_turn(database, "reader 1", shared=True), database_turn(database, "reader 2", shared=True):
        waits: list[str] = []
        with pytest.raises(ChannelBusy, match="still in use"):
            with database_turn(database, "run ffff0000 storing videos", log=waits.append, wait_s=0.6):
                pass
        assert waits and "waiting for" in waits[0]
    with database_turn(database, "run ffff0000 storing videos", wait_s=0.6):  # free once they let go
        with pytest.raises(ChannelBusy, match=r"run ffff0000 storing videos \(pid \d+\)"):
            with database_turn(database, "reader 3", shared=True, wait_s=0.6):
                pass


TIMED_STEP = """
import json, sys, time
from pathlib import Path

import dagster as dg
import polars as pl

from mednarratives_assets.defs.partitions import channel_asset
from mednarratives_assets.defs.resources import DataPaths, build_resources
from mednarratives_assets.settings import DataLayout


@channel_asset("tests")
def slow_step(context: dg.AssetExecutionContext, paths: DataPaths) -> pl.DataFrame:
    started = time.time()
    time.sleep(3.0)
    with open(sys.argv[3], "a") as spans:
        spans.write(json.dumps([context.partition_key, started, time.time()]) + "\\n")
    return pl.DataFrame({"channel": [context.partition_key]})


root = Path(sys.argv[1])
with dg.DagsterInstance.ephemeral() as instance:  # each process its own instance, as CLI and UI are
    instance.add_dynamic_partitions("channel", [sys.argv[2]])
    resources = build_resources(DataLayout(root, root / f"{sys.argv[2]}-{time.time_ns()}.duckdb"))
    run = dg.materialize([slow_step], partition_key=sys.argv[2], resources=resources, instance=instance)
    assert run.success
"""


def test_two_instances_take_turns_on_one_channel_and_work_on_two_at_once(tmp_path):
    spans_file = tmp_path / "spans.jsonl"
    channels = ["neuro", "neuro", "chest"]
    processes = [
        subprocess.Popen([sys.executable, "-c", TIMED_STEP, str(tmp_path), channel, str(spans_file)])
        for channel in channels
    ]
    assert [p.wait(timeout=300) for p in processes] == [0, 0, 0]
    spans = [json.loads(line) for line in spans_file.read_text().splitlines()]
    neuro = sorted((start, end) for channel, start, end in spans if channel == "neuro")
    assert len(neuro) == 2 and neuro[0][1] <= neuro[1][0], f"two runs of neuro overlapped: {neuro}"
    [(chest_start, chest_end)] = [(start, end) for channel, start, end in spans if channel == "chest"]
    assert any(start < chest_end and chest_start < end for start, end in neuro), "chest waited for neuro"


def test_the_lock_is_per_stage_and_channel(layout):
    first = layout.channel_path(layout.locks_dir / "stable_chunks", "neuro", ".lock")
    with channel_lock(first, "run 1"):
        for other in (
            layout.channel_path(layout.locks_dir / "stable_chunks", "chest", ".lock"),
            layout.channel_path(layout.locks_dir / "cursor_traces", "neuro", ".lock"),
        ):
            with channel_lock(other, "run 2", wait_s=0.5):  # ChannelBusy if it had to wait
                pass
    assert Path(first).read_text() == ""  # released: no holder named


CHUNK_CHANNEL = """
import sys, time
from pathlib import Path

import dagster as dg

from mednarratives_assets.defs.resources import build_resources
from mednarratives_assets.defs.stable_chunks import stable_chunks
from mednarratives_assets.defs.videos import videos
from mednarratives_assets.settings import DataLayout
from mednarratives_assets.stages import stable_chunks as stage

hash_now = stage.perceptual_hash


def slow_hash(*args):  # widens the time each keyframe folder is being written, as large videos do
    time.sleep(0.3)
    return hash_now(*args)


stage.perceptual_hash = slow_hash
root = Path(sys.argv[1])
with dg.DagsterInstance.ephemeral() as instance:  # each process its own instance, as CLI and UI are
    instance.add_dynamic_partitions("channel", ["neuro"])
    resources = build_resources(DataLayout.at(root))
    run = dg.materialize(
        [videos, stable_chunks], partition_key="neuro", resources=resources, instance=instance
    )
    sys.exit(0 if run.success else 1)
"""


def slide_video(path: Path, shades: list[int], seconds_each: float = 2.5, fps: int = 10) -> Path:
    """Grey slides with a bright panel, each held still long enough to be a stable chunk."""

    def frames():
        for shade in shades:
            for _ in range(round(seconds_each * fps)):
                frame = np.full((96, 160, 3), shade, np.uint8)
                frame[24:72, 40:120] = 255 - shade
                yield frame

    return write_mp4(path, frames(), fps=fps)


def test_two_instances_chunking_one_channel_at_once_lose_no_video(layout):
    """Both once shared a `<video>.partial` keyframe folder, and one whole video vanished."""
    names = [f"lecture_{i}" for i in range(4)]
    for i, name in enumerate(names):
        slide_video(layout.channel_dir("neuro") / f"{name}.mp4", [40 + 30 * i, 200 - 30 * i])
    FrameClassifier(_FrameNet().eval()).save(layout.frame_classifier_path)  # untrained: scores don't matter
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", CHUNK_CHANNEL, str(layout.data_root)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    with duckdb.connect(str(layout.duckdb_path), read_only=True) as con:
        rows = con.sql("select video_id, keyframe_path, keyframe_sha256 from stable_chunks").fetchall()
    assert sorted({video_id for video_id, _, _ in rows}) == names
    for _, keyframe, digest in rows:
        assert hashlib.sha256((layout.data_root / keyframe).read_bytes()).hexdigest() == digest
    leftovers = [p for p in layout.keyframes_dir.rglob("*") if p.name.endswith(".partial")]
    assert leftovers == []


def test_files_and_folders_get_the_usual_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        write_file(tmp_path / "entry.json", "{}")
        with replaced_folder(tmp_path / "keyframes") as staging:
            (staging / "chunk-000.png").write_bytes(b"png")
    finally:
        os.umask(mask)
    assert (tmp_path / "entry.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "keyframes").stat().st_mode & 0o777 == 0o755
