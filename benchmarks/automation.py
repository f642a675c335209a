"""Does the automation leave anything Unsynced when a backfill of `videos` lands part-way through a
channel run? Every step of the run, with and without a sensor tick between the backfill and the
run's end, replayed on real Dagster runs of stand-in assets (evaluation/automation_replay.py):
once with the project's conditions, once with Dagster's `any_deps_updated().since_last_handled()`
in their place.

    python benchmarks/automation.py
"""

from __future__ import annotations

import time

import dagster as dg

from mednarratives_assets.definitions import defs
from mednarratives_assets.evaluation.automation_replay import backfill_under_a_run

# What the new-video sensor's channel_pipeline_job makes.
CHANNEL_ASSETS = [
    "video_downloads",
    "videos",
    "stable_chunks",
    "transcript_segments",
    "transcript_words",
    "transcripts",
    "cursor_traces",
    "video_filter",
    "boxes",
    "narratives",
    "aligned_pairs",
    "curated_text",
    "dataset_export",
    "medical_entities",
]
VARIANTS = {
    "project (defs/automation.py)": None,
    "Dagster's since_last_handled() alone": {
        "follows its parents": dg.AutomationCondition.any_deps_updated().since_last_handled()
    },
}


def main() -> None:
    started = time.monotonic()
    steps = CHANNEL_ASSETS[2:]  # the backfill lands after the run made `videos`
    print(f"{'conditions':<38} {'scenarios':>9} {'left unsynced':>13}  assets left unsynced (scenarios)")
    for name, replace in VARIANTS.items():
        left: dict[str, int] = {}
        failed = 0
        for during in steps:
            for tick_between in (False, True):
                unsynced = backfill_under_a_run(defs, CHANNEL_ASSETS, during, tick_between, replace)
                failed += bool(unsynced)
                for asset in unsynced:
                    left[asset] = left.get(asset, 0) + 1
        listed = ", ".join(f"{asset} ({n})" for asset, n in sorted(left.items())) or "-"
        print(f"{name:<38} {2 * len(steps):>9} {failed:>13}  {listed}")
    print(f"({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
