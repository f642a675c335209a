"""Declarative automation: the asset graph keeps itself current (docs/stages/ingest.md#automation).

- `video_downloads` and `videos` are the new-video sensor's: it runs a channel whose files changed.
- The channel assets after `videos` follow their upstream partition: once a channel's `videos`
  (or any other parent) has a materialization that they have not handled, as after a backfill of
  `videos` alone, they are requested for that channel. A run that made the parent and them
  together (the new-video sensor's `channel_pipeline_job`) has handled it already, and a sensor run
  that stops after a current channel's `videos` updates nothing to follow. What a run made from a
  parent that changed under it is Unsynced when the run ends, and is requested again.
- The `dataset` group follows the channels a tick after they changed, once no channel run is in
  flight, so that a burst of channel runs rebuilds it once and it never reads a channel mid-run;
  a channel never materialized does not hold it back (`dataset_statistics` leaves it out and
  names it), but the statistics must exist before the merged export that reads them.
- The `genmedclip` group retrains when the pairs or their curated texts changed, at most once per
  tick of MEDNARRATIVES_GENMEDCLIP_CRON: training is the costly step, and one channel run should
  not start it. It waits a tick after an input changed, for the channel assets after that input
  (curated_text after new pairs) to be requested first.
- The trained models (`frame_classifier`, `cursor_detector`) are never automated: they are trained
  when asked. A model missing under the data root holds nothing back (the shipped default stands
  in), and a model trained on request is followed by the stages that use it.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping

import dagster as dg
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster_shared.check import CheckError

GENMEDCLIP_CRON_ENV = "MEDNARRATIVES_GENMEDCLIP_CRON"
DEFAULT_GENMEDCLIP_CRON = "0 3 * * *"  # daily at 03:00 UTC
TRAINED_MODELS = dg.AssetSelection.assets("frame_classifier", "cursor_detector")

AutomationCondition = dg.AutomationCondition
# Neither while a parent is being made (its run will bring the change) nor while already on its way.
_settled = ~AutomationCondition.any_deps_in_progress() & ~AutomationCondition.in_progress()


class Unsynced(dg.AutomationCondition[dg.AssetKey]):
    """The partitions the UI shows as "Unsynced": a parent has a materialization newer than the one
    their latest materialization read."""

    @property
    def name(self) -> str:
        return "unsynced"

    def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:
        view = context.asset_graph_view
        queryer = view.get_inner_queryer_for_back_compat()
        resolver = CachingStaleStatusResolver(view.instance, view.asset_graph, view, instance_queryer=queryer)
        stale = {
            partition
            for partition in context.candidate_subset.expensively_compute_asset_partitions()
            if resolver.get_status(partition.asset_key, partition.partition_key) == StaleStatus.STALE
        }
        return dg.AutomationResult(context, view.get_asset_subset_from_asset_partitions(context.key, stale))


# Dagster's since_last_handled() counts any new materialization as handling its parents' changes, so
# a run that ended after a parent changed under it (a backfill of `videos` while the sensor's run of
# that channel was past `videos`) left the change unfollowed. Here what a run made from a parent that
# changed meanwhile (Unsynced once made) is to follow, until requested when settled; a request whose
# run comes back Unsynced on the next tick has not handled it either.
_MADE_UNSYNCED = (AutomationCondition.newly_updated() & Unsynced()).with_label(
    "made from parents that changed"
)
_HANDLED = (
    ((AutomationCondition.newly_requested() | AutomationCondition.newly_updated()) & ~_MADE_UNSYNCED)
    | AutomationCondition.initial_evaluation()
).with_label("handled")
FOLLOWS_PARENTS = (
    (AutomationCondition.any_deps_updated() | _MADE_UNSYNCED)
    .since(_HANDLED)
    .with_label("follows its parents")
)

CHANNEL_FOLLOWS_UPSTREAM = (
    FOLLOWS_PARENTS & ~AutomationCondition.any_deps_missing().ignore(TRAINED_MODELS) & _settled
).with_label("follows its channel's upstream")

DATASET_FOLLOWS_CHANNELS = (
    FOLLOWS_PARENTS
    # dataset_export_all reads the statistics: never before they exist (or come in the same run)
    & ~AutomationCondition.any_deps_missing().allow(dg.AssetSelection.groups("dataset"))
    & _settled
    # nor in a tick that sees a channel asset change: the channel assets after it are requested in
    # that tick (a backfill's followers, new pairs' curated_text), and Dagster's will_be_requested
    # never holds for a channel's partition under an unpartitioned asset. By the next tick their
    # runs are in progress, and _settled holds it back until they end.
    & ~AutomationCondition.any_deps_updated().ignore(dg.AssetSelection.groups("dataset"))
).with_label("follows the channels a tick after they changed, once no channel run is in flight")


def genmedclip_cron(environ: Mapping[str, str] = os.environ) -> str:
    """The cron schedule (UTC) whose ticks the genmedclip group may retrain at."""
    cron = environ.get(GENMEDCLIP_CRON_ENV, "").strip() or DEFAULT_GENMEDCLIP_CRON
    try:
        AutomationCondition.cron_tick_passed(cron)
    except CheckError:
        raise ValueError(
            f"{GENMEDCLIP_CRON_ENV}={cron!r} is no cron schedule (e.g. {DEFAULT_GENMEDCLIP_CRON!r})"
        ) from None
    return cron


def retrained_on_cron(cron: str) -> dg.AutomationCondition:
    """Requested when a tick of `cron` has passed and its inputs have changed, both since it was
    last requested or made: a change retrains at the first tick after the last retraining (at once
    when one has passed already), and a tick without a change does nothing."""
    return (
        AutomationCondition.cron_tick_passed(cron).since_last_handled()
        & AutomationCondition.any_deps_updated().since_last_handled()
        & _settled
        # nor in a tick that sees an input change: the channel assets after it are requested in that
        # tick (new pairs' curated_text, say), and Dagster's will_be_requested never holds for a
        # channel's partition under an unpartitioned asset. By the next tick their runs are in progress.
        & ~AutomationCondition.any_deps_updated().ignore(dg.AssetSelection.groups("genmedclip"))
    ).with_label(f"retrained at a tick of {cron} (UTC) when its inputs changed")


GENMEDCLIP_RETRAINING = retrained_on_cron(genmedclip_cron())

with warnings.catch_warnings():  # use_user_code_server is a beta parameter in dagster 1.13, pinned exactly
    warnings.simplefilter("ignore", dg.BetaWarning)
    automation_sensor = dg.AutomationConditionSensorDefinition(
        "automation_sensor",
        target=dg.AssetSelection.all(),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
        use_user_code_server=True,  # evaluates `Unsynced`, a condition of our own
        description="Requests the assets whose automation condition holds (defs/automation.py): channel "
        "assets after their upstream changed, the dataset after the channels, GenMedCLIP at its cron.",
    )
