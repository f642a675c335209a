"""What `mednarratives` prints while its runs go: one line when a stage starts, the stage's own
progress lines, and one when it ends or fails, instead of every Dagster event.

The UI keeps the full event log; the terminal gets what a person watching it wants to read.
"""

from __future__ import annotations

import logging
import sys

import dagster as dg
from dagster._core.log_manager import LOG_RECORD_METADATA_ATTR
from dagster._utils.error import SerializableErrorInfo

_STEP_EVENTS = {"STEP_START", "STEP_SUCCESS", "STEP_FAILURE"}


def failure_reason(error: SerializableErrorInfo | None) -> str:
    """The first line of the innermost error: what went wrong, not the framework around it."""
    while error is not None and error.cause is not None:
        error = error.cause
    if error is None:
        return "failed"
    message = error.message.strip().splitlines()[0] if error.message.strip() else error.cls_name or "failed"
    # dg.Failure and step errors arrive as "dagster._core....Failure: the description"
    return message.split(": ", 1)[1] if message.startswith("dagster.") and ": " in message else message


def step_failures(events: list[dg.DagsterEvent]) -> list[str]:
    """ "<step>: <reason>" for each failed step of a run's events."""
    return [
        f"{event.step_key}: {failure_reason(event.step_failure_data.error)}"
        for event in events
        if event.event_type_value == "STEP_FAILURE"
    ]


def progress_line(record: logging.LogRecord) -> str | None:
    """The line to print for one record of a run, or None for records the terminal leaves out."""
    meta = getattr(record, LOG_RECORD_METADATA_ATTR, None) or {}
    event, step = meta.get("dagster_event"), meta.get("step_key")
    if event is None:
        if record.levelno < logging.INFO or (step is None and record.levelno < logging.WARNING):
            return None  # debug lines, and the engine's own chatter ("Executing steps in process ...")
        level = "" if record.levelno < logging.WARNING else f"{record.levelname}: "
        return f"  {step or 'run'}: {level}{meta.get('orig_message', record.getMessage())}"
    kind = event.event_type_value
    if kind not in _STEP_EVENTS:
        return None
    if kind == "STEP_START":
        return f"  {step}: started"
    if kind == "STEP_SUCCESS":
        return f"  {step}: done in {event.event_specific_data.duration_ms / 1000:.1f} s"
    return f"  {step}: FAILED: {failure_reason(event.step_failure_data.error)}"


class _ProgressHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        line = progress_line(record)
        if line is not None:
            print(line, file=sys.stdout, flush=True)


@dg.logger(description="Stage starts, ends, failures and progress lines, one line each, on standard output.")
def terminal_progress(init_context: dg.InitLoggerContext) -> logging.Logger:
    # DEBUG: Dagster sends step events at that level; progress_line picks what to print.
    logger = logging.Logger("mednarratives", level=logging.DEBUG)
    logger.addHandler(_ProgressHandler())
    return logger
