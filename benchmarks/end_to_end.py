"""End to end: every channel asset over lectures of three sizes, and what re-runs, one new lecture and
a backfill's parallel runs cost.

    python benchmarks/end_to_end.py [--work-dir /tmp/mednarratives-e2e] [--seconds 60] [--quick]
                                    [--classifier PATH] [--detector PATH]

The corpus is the demo generator's (`mednarratives demo` lectures, 30 fps): nine lectures at
1280x720, three at 854x480 and three at 1920x1080 (--quick: six, two and two of 20 s), built once
and kept under --work-dir. Every
run is a real Dagster run of `channel_pipeline_job` for one channel partition, with the job's own
executor, in a process of its own sharing one Dagster instance (as a backfill's runs do); the
parent reads each step's time from the instance and the process's peak RSS from os.wait4.

1. Serial: four channels (720p twice, 480p, 1080p; three lectures each) one run after another:
   per-stage seconds and real-time factor, per size and overall, and peak RSS.
2. No-change re-run: the same four runs again, nothing new, as the new-video sensor launches them
   (`skip_if_current`: each stops after `videos`); then as a backfill launches them, every stage
   materialized with each video from the stages' caches.
3. Backfill at concurrency 2: the four channels in a fresh data root, two runs at a time
   (`max_concurrent_runs: 2` in dagster.yaml), against the serial wall time.
4. One new lecture: a channel of eight 720p lectures, then a ninth added, against that ninth
   lecture alone in a channel of its own.

Models: --classifier and --detector, else those in use (the data root's, else the shipped ones).
Targets (2 cores): 720p at >= 10x real time end to end, 1080p >= 6x; a no-change re-run <= 5% of
the first; one new lecture <= 1.3x that lecture alone; peak RSS <= 2.5 GB; the backfill at
concurrency 2 in <= 0.65x the serial wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from mednarratives_assets.defs.resources import build_resources
from mednarratives_assets.evaluation.report import Check, print_checks
from mednarratives_assets.settings import DataLayout

SIZES = {"720p": (1280, 720), "480p": (854, 480), "1080p": (1920, 1080)}
TARGET_X_REAL_TIME = {"720p": 10.0, "1080p": 6.0}
TARGET_NO_CHANGE_SHARE = 0.05
TARGET_ONE_NEW_RATIO = 1.3
TARGET_PEAK_RSS_MB = 2500.0
TARGET_PARALLEL_SHARE = 0.65
JOB = "channel_pipeline_job"


@dataclass(frozen=True)
class RunFigures:
    channel: str
    wall_s: float  # the child process, start to exit
    run_s: float  # the Dagster run, start to end
    steps: dict[str, float]  # step key -> seconds
    peak_rss_mb: float
    cpu_s: float  # user and system time of the child process
    video_s: float


# --- the corpus -----------------------------------------------------------------------------------


def build_corpus(work: Path, seconds: float, quick: bool) -> dict[str, list[Path]]:
    """Lectures by size, generated once under work/corpus/<size>."""
    from mednarratives_assets.demo.corpus import DemoCorpusConfig, generate_corpus

    per_channel = 2 if quick else 3
    counts = {"720p": (3, per_channel), "480p": (1, per_channel), "1080p": (1, per_channel)}
    lectures = {}
    for size, (channels, per_channel) in counts.items():
        width, height = SIZES[size]
        layout = DataLayout.at(work / "corpus" / size)
        config = DemoCorpusConfig(
            seed=20,
            channels=channels,
            videos_per_channel=per_channel,
            seconds=seconds,
            width=width,
            height=height,
            fps=30,
        )
        entries = generate_corpus(layout, config, workers=2, log=print)
        lectures[size] = [layout.data_root / entry["video"] for entry in entries]
    return lectures


def data_root(
    work: Path, name: str, classifier: Path, detector: Path, channels: dict[str, list[Path]]
) -> DataLayout:
    """A fresh data root with the models in place and the channels' lectures."""
    root = work / "runs" / name
    shutil.rmtree(root, ignore_errors=True)
    layout = DataLayout.at(root / "data")
    layout.models_dir.mkdir(parents=True)
    shutil.copy(classifier, layout.frame_classifier_path)
    shutil.copy(detector, layout.cursor_detector_path)
    if detector.with_suffix(".json").is_file():
        shutil.copy(detector.with_suffix(".json"), layout.cursor_detector_path.with_suffix(".json"))
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(
        Path(__file__).resolve().parents[1] / "deploy" / "local" / "dagster.yaml", home / "dagster.yaml"
    )
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)):  # its storage is made once, not by racing runs
        pass
    for channel, lectures in channels.items():
        place(layout, channel, lectures)
    return layout


def place(layout: DataLayout, channel: str, lectures: list[Path]) -> None:
    folder = layout.channel_dir(channel)
    folder.mkdir(parents=True, exist_ok=True)
    for lecture in lectures:
        target = folder / f"{lecture.parent.name}-{lecture.name}"
        if not target.exists():
            os.link(lecture, target)


# --- one run, in a process of its own -----------------------------------------------------------


def run_channel(layout: DataLayout, channel: str, skip_if_current: bool = False) -> RunFigures:
    """One Dagster run of the channel, in a child process; its figures. skip_if_current: stop after
    `videos` when the channel is current, as the new-video sensor's runs do."""
    home = layout.data_root.parent / "dagster_home"
    env = {**os.environ, "MEDNARRATIVES_DATA_ROOT": str(layout.data_root), "DAGSTER_HOME": str(home)}
    env.pop("MEDNARRATIVES_DUCKDB", None)
    out = home / f"{channel}-{time.monotonic_ns()}.json"
    started = time.perf_counter()
    with out.with_suffix(".log").open("w") as log:
        child = subprocess.Popen(
            [sys.executable, __file__, "--child", channel, str(out), str(skip_if_current)],
            env=env,
            stdout=log,
            stderr=log,
        )
        _, status, usage = os.wait4(child.pid, 0)
    wall_s = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        tail = out.with_suffix(".log").read_text()[-3000:]
        raise SystemExit(f"the run of channel {channel!r} failed:\n{tail}")
    figures = json.loads(out.read_text())
    return RunFigures(
        channel=channel,
        wall_s=wall_s,
        run_s=figures["run_s"],
        steps=figures["steps"],
        peak_rss_mb=usage.ru_maxrss / 1024,
        cpu_s=usage.ru_utime + usage.ru_stime,
        video_s=figures["video_s"],
    )


def child_run(channel: str, out: Path, skip_if_current: bool) -> None:
    """Run the channel's job as a deployment would (its own executor), then write its figures."""
    import dagster as dg

    instance = dg.DagsterInstance.get()
    instance.add_dynamic_partitions("channel", [channel])
    result = dg.execute_job(
        dg.reconstructable(channel_job),
        instance=instance,
        tags={"dagster/partition": channel},
        run_config={"ops": {"videos": {"config": {"skip_if_current": skip_if_current}}}},
    )
    if not result.success:
        raise SystemExit(f"channel {channel!r}: run {result.run_id} failed")
    record = instance.get_run_record_by_id(result.run_id)
    steps = {
        stats.step_key: stats.end_time - stats.start_time
        for stats in instance.get_run_step_stats(result.run_id)
        if stats.start_time and stats.end_time
    }
    layout = DataLayout.from_env()
    import duckdb

    with duckdb.connect(str(layout.duckdb_path), read_only=True) as con:
        [(video_s,)] = con.execute(
            "select coalesce(sum(duration_s), 0) from videos where channel = ?", [channel]
        ).fetchall()
    out.write_text(
        json.dumps({"run_s": record.end_time - record.start_time, "steps": steps, "video_s": video_s})
    )


def channel_job():
    from mednarratives_assets.definitions import defs

    return defs.resolve_job_def(JOB)


# --- the scenarios ------------------------------------------------------------------------------


def run_all(
    layout: DataLayout, channels: list[str], concurrency: int, skip_if_current: bool = False
) -> tuple[float, list[RunFigures]]:
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        runs = list(pool.map(lambda channel: run_channel(layout, channel, skip_if_current), channels))
    return time.perf_counter() - started, runs


def busy_cores(wall_s: float, runs: list[RunFigures]) -> float:
    """CPU seconds the runs' processes used per second of wall time: what more runs at once can gain."""
    return sum(run.cpu_s for run in runs) / wall_s


def stage_table(runs: list[RunFigures], size_of: dict[str, str]) -> None:
    steps = sorted(
        {step for run in runs for step in run.steps}, key=lambda s: -sum(r.steps.get(s, 0) for r in runs)
    )
    sizes = list(dict.fromkeys(size_of[run.channel] for run in runs))
    video = {size: sum(r.video_s for r in runs if size_of[r.channel] == size) for size in sizes}
    print(f"{'step':<22}" + "".join(f"{size + ' s':>10}{'x rt':>7}" for size in sizes))
    for step in steps:
        cells = ""
        for size in sizes:
            seconds = sum(r.steps.get(step, 0.0) for r in runs if size_of[r.channel] == size)
            cells += f"{seconds:>10.1f}{video[size] / max(seconds, 1e-9):>7.1f}"
        print(f"{step:<22}{cells}")
    cells = ""
    for size in sizes:
        seconds = sum(r.run_s for r in runs if size_of[r.channel] == size)
        cells += f"{seconds:>10.1f}{video[size] / seconds:>7.1f}"
    print(f"{'whole run':<22}{cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work-dir", default="/tmp/mednarratives-e2e")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each lecture")
    parser.add_argument("--quick", action="store_true", help="two short lectures per size: a smoke run")
    parser.add_argument("--classifier", help="frame classifier (default: the one in use)")
    parser.add_argument("--detector", help="cursor detector (default: the one in use)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_run(args.child[0], Path(args.child[1]), args.child[2] == "True")
        return
    models = build_resources(DataLayout.from_env())["models"]
    classifier = Path(args.classifier or models.source("frame_classifier"))
    detector = Path(args.detector or models.source("cursor_detector"))
    for path in (classifier, detector):
        if not path.is_file():
            raise SystemExit(f"{path} is missing: pass --classifier/--detector")
    work = Path(args.work_dir)
    seconds = 20.0 if args.quick else args.seconds
    lectures = build_corpus(work, seconds, args.quick)
    per_channel = 2 if args.quick else 3
    groups = {
        "lectures_720p_a": lectures["720p"][:per_channel],
        "lectures_720p_b": lectures["720p"][per_channel : 2 * per_channel],
        "lectures_480p": lectures["480p"][:per_channel],
        "lectures_1080p": lectures["1080p"][:per_channel],
    }
    size_of = {channel: channel.split("_")[1] for channel in groups}
    print(f"models: {classifier}, {detector}; {os.cpu_count()} cores")

    serial = data_root(work, "serial", classifier, detector, groups)
    serial_wall, serial_runs = run_all(serial, list(groups), 1)
    print(
        f"\n1. serial: {len(groups)} channels, {sum(r.video_s for r in serial_runs):.0f} s of video, "
        f"{serial_wall:.1f} s wall"
    )
    stage_table(serial_runs, size_of)
    peak = max(r.peak_rss_mb for r in serial_runs)
    print(f"peak RSS of a run: {peak:.0f} MB")
    print(
        f"cores kept busy one run at a time: {busy_cores(serial_wall, serial_runs):.2f} of {os.cpu_count()}"
    )

    rerun_wall, rerun_runs = run_all(serial, list(groups), 1, skip_if_current=True)
    first_s, again_s = sum(r.run_s for r in serial_runs), sum(r.run_s for r in rerun_runs)
    print(
        f"\n2. no-change re-run as the sensor launches it: {again_s:.1f} s of runs against {first_s:.1f} s "
        f"the first time ({again_s / first_s:.1%}); {rerun_wall:.1f} s wall with process start"
    )
    _, backfill_runs = run_all(serial, list(groups), 1)
    backfill_s = sum(r.run_s for r in backfill_runs)
    print(
        f"   as a backfill launches it, every stage materialized from the caches: {backfill_s:.1f} s "
        f"({backfill_s / first_s:.1%})"
    )

    parallel = data_root(work, "parallel", classifier, detector, groups)
    parallel_wall, parallel_runs = run_all(parallel, list(groups), 2)
    print(
        f"\n3. backfill of {len(groups)} channels: {serial_wall:.1f} s at concurrency 1, "
        f"{parallel_wall:.1f} s at concurrency 2 ({parallel_wall / serial_wall:.2f}x); cores kept busy "
        f"{busy_cores(serial_wall, serial_runs):.2f} and {busy_cores(parallel_wall, parallel_runs):.2f}"
    )
    peak = max(peak, *(r.peak_rss_mb for r in parallel_runs))
    video_s = sum(r.video_s for r in serial_runs)
    print(
        f"end to end over all sizes: {video_s / serial_wall:.1f}x real time one run at a time, "
        f"{video_s / parallel_wall:.1f}x two at a time (wall time, process starts included)"
    )

    newest, earlier = lectures["720p"][-1], lectures["720p"][:-1]
    growing = data_root(work, "growing", classifier, detector, {"growing": earlier})
    first_growing = run_channel(growing, "growing")
    place(growing, "growing", [newest])
    with_new = run_channel(growing, "growing")
    alone_layout = data_root(work, "alone", classifier, detector, {"alone": [newest]})
    alone = run_channel(alone_layout, "alone")
    ratio = with_new.run_s / alone.run_s
    print(
        f"\n4. a channel of {len(earlier)} lectures ({first_growing.run_s:.1f} s to run): one more costs "
        f"{with_new.run_s:.1f} s; that lecture alone {alone.run_s:.1f} s ({ratio:.2f}x)"
    )
    for step in sorted(with_new.steps, key=lambda s: -with_new.steps[s]):
        print(
            f"   {step:<22}{with_new.steps[step]:>7.1f} s added, {alone.steps.get(step, 0.0):>7.1f} s alone"
        )

    rates = {
        size: sum(r.video_s for r in serial_runs if size_of[r.channel] == size)
        / sum(r.run_s for r in serial_runs if size_of[r.channel] == size)
        for size in TARGET_X_REAL_TIME
    }
    print()
    print_checks(
        [
            *(
                Check(f"{size} end to end (x real time)", rates[size], target, "{:.1f}".format)
                for size, target in TARGET_X_REAL_TIME.items()
            ),
            Check(
                "no-change re-run (share of first)",
                again_s / first_s,
                TARGET_NO_CHANGE_SHARE,
                "{:.3f}".format,
                "<=",
            ),
            Check("one new lecture (x alone)", ratio, TARGET_ONE_NEW_RATIO, "{:.2f}".format, "<="),
            Check("peak RSS (MB)", peak, TARGET_PEAK_RSS_MB, "{:.0f}".format, "<="),
            Check(
                "backfill at 2 (x serial)",
                parallel_wall / serial_wall,
                TARGET_PARALLEL_SHARE,
                "{:.2f}".format,
                "<=",
            ),
        ],
        name_width=36,
        value_width=8,
    )


if __name__ == "__main__":
    main()
