"""A new user's first run: `mednarratives demo` on a fresh clone, then `mednarratives run` on a folder of
one's own videos, timed, with what they leave behind.

    python benchmarks/first_run.py [--work-dir /tmp/mednarratives-first-run] [--repo .]

1. Clone --repo (its committed HEAD) into --work-dir/clone, and run `python -m mednarratives_assets.cli
   demo` there with the clone's data root: no models, no caches, no corpus. Target (2 cores): 8 minutes.
2. Copy the demo's videos, without their ground truth, into a fresh data root, in folders named as a
   user would name their channels, and time `mednarratives run --clip` on them.
Each prints its wall time, exit status, the rows per table, the benchmark_scores rows per model and the
merged dataset's splits.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from mednarratives_assets.evaluation.report import Check, print_checks
from mednarratives_assets.settings import DataLayout

TARGET_DEMO_S = 8 * 60


def run_cli(clone: Path, data_root: Path, arguments: list[str], log: Path) -> tuple[float, int]:
    """`python -m mednarratives_assets.cli ...` in the clone (its own package first on the path)."""
    env = {**os.environ, "MEDNARRATIVES_DATA_ROOT": str(data_root)}
    env.pop("MEDNARRATIVES_DUCKDB", None)
    env.pop("DAGSTER_HOME", None)
    started = time.perf_counter()
    with log.open("w") as out:
        code = subprocess.run(
            [sys.executable, "-m", "mednarratives_assets.cli", *arguments],
            cwd=clone,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        ).returncode
    return time.perf_counter() - started, code


def describe(data_root: Path) -> None:
    database = data_root / "mednarratives.duckdb"
    with duckdb.connect(str(database), read_only=True) as db:
        tables = [row[0] for row in db.execute("select table_name from information_schema.tables").fetchall()]
        counts = {t: db.execute(f'select count(*) from "{t}"').fetchone()[0] for t in sorted(tables)}
        print("  rows: " + ", ".join(f"{t} {n}" for t, n in counts.items()))
        if "benchmark_scores" in tables:
            per_model = db.execute(
                "select model_id, benchmark, count(*) from benchmark_scores group by all order by all"
            ).fetchall()
            print("  benchmark_scores: " + ", ".join(f"{m} {b} {n}" for m, b, n in per_model))
    merged = DataLayout.at(data_root).merged_dataset_dir
    for split in ("train", "validation", "test"):
        if (merged / split).is_dir():
            print(f"  merged dataset {split}: {len(list((merged / split).glob('*.png')))} images")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/mednarratives-first-run"))
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1])
    args = parser.parse_args()
    work: Path = args.work_dir
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    clone = work / "clone"
    subprocess.run(["git", "clone", "--quiet", str(args.repo), str(clone)], check=True)
    print(f"fresh clone of {args.repo} at {clone}; {os.cpu_count()} cores")

    demo_s, demo_code = run_cli(clone, clone / "data", ["demo"], work / "demo.log")
    print(f"mednarratives demo: {demo_s / 60:.1f} min, exit {demo_code} (log {work / 'demo.log'})")
    describe(clone / "data")

    own = work / "own-videos"
    for video in sorted((clone / "data" / "videos").glob("*/*.mp4")):
        target = own / "videos" / f"my-{video.parent.name}" / video.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(video, target)
    n_videos = len(list(own.glob("videos/*/*.mp4")))
    run_s, run_code = run_cli(clone, own, ["run", "--clip"], work / "run.log")
    print(
        f"mednarratives run --clip on {n_videos} videos of one's own: {run_s / 60:.1f} min, exit {run_code}"
    )
    describe(own)

    minutes = "{:.1f} min".format
    status = "{:.0f}".format
    print_checks(
        [
            Check("demo on a fresh clone", demo_s / 60, TARGET_DEMO_S / 60, minutes, "<="),
            Check("demo exit status", demo_code, 0, status, "<="),
            Check("run --clip exit status", run_code, 0, status, "<="),
        ],
        name_width=28,
        value_width=9,
    )


if __name__ == "__main__":
    main()
