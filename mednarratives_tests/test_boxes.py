from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import polars as pl
import pytest

from mednarratives_assets.evaluation.stage_scores import box_iou
from mednarratives_assets.stages.boxes import (
    BOXES_SCHEMA,
    BoxSettings,
    boxes_png,
    drop_outliers,
    dwell_boxes,
    find_dwells,
    phrase_during,
    reference_boxes,
)
from mednarratives_tests.narration_fixtures import REGION, box, keyframe, narrated_channel


def xywh(box) -> tuple[float, float, float, float]:
    return box[0], box[1], box[2] - box[0], box[3] - box[1]


def corners(row: dict) -> tuple[float, float, float, float]:
    return row["x1_px"], row["y1_px"], row["x2_px"], row["y2_px"]


def trace(points: list[tuple[float, float, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        points, schema={"t_s": pl.Float64, "x_px": pl.Float64, "y_px": pl.Float64}, orient="row"
    )


@pytest.fixture
def channel(tmp_path):
    return tmp_path, narrated_channel(tmp_path)


def test_dwells_are_found_in_time_and_travel_between_them_is_not_one(channel):
    _, narrated = channel
    points = narrated.tables["cursor_traces"]
    t = points["t_s"].to_numpy()
    xy = points.select("x_px", "y_px").to_numpy()
    dwells = find_dwells(t, xy, 0.12 * 300, BoxSettings())
    spans = [(round(t[i], 1), round(t[j - 1], 1)) for i, j in dwells]
    assert spans == [(2.6, 5.0), (5.4, 8.0), (8.4, 11.3)]  # rest, still on A, circling B


def test_a_short_pause_is_no_dwell_and_a_gap_in_the_trace_ends_one():
    settings = BoxSettings()
    t = np.arange(0, 2.0, 0.1)
    xy = np.tile([100.0, 100.0], (len(t), 1))
    assert find_dwells(t[:5], xy[:5], 30, settings) == []  # 0.4 s
    gapped = np.concatenate([t[:8], t[8:] + 1.0])  # the pointer vanished for a second
    assert [(i, j) for i, j in find_dwells(gapped, xy, 30, settings)] == [(0, 8), (8, 20)]


def test_a_stray_point_is_dropped_from_a_dwell():
    xy = np.array([[100, 100], [101, 99], [99, 101], [100, 102], [102, 100], [130, 60]], float)
    kept = drop_outliers(xy, 3.0)
    assert len(kept) == 5 and [130, 60] not in kept.tolist()


def test_a_still_pointer_off_centre_is_boxed_by_the_structure_under_it(channel):
    root, narrated = channel
    boxes = box(root, narrated.tables, log=pytest.fail)
    assert boxes.columns == list(BOXES_SCHEMA) and boxes.height == 3
    rows = boxes.to_dicts()
    focus_a, focus_b = narrated.focus_boxes
    assert box_iou(xywh(corners(rows[1])), xywh(focus_a)) >= 0.7  # still, 8 px off the focus centre
    assert box_iou(xywh(corners(rows[2])), xywh(focus_b)) >= 0.7  # circling inside it
    assert all(0 <= r[c] <= 1 for r in rows for c in ("x1_norm", "y1_norm", "x2_norm", "y2_norm"))
    assert rows[1]["phrase"] == "Notice this hyperdense rounded focus."
    assert rows[2]["phrase"] == "There is this bright area below."

    trace_only = box(root, narrated.tables, replace(BoxSettings(), snap_to_image=False)).to_dicts()
    side = 0.12 * max(REGION[2:])  # a still pointer alone gives the smallest box
    assert trace_only[1]["x2_px"] - trace_only[1]["x1_px"] == pytest.approx(side, abs=0.5)
    assert box_iou(xywh(corners(trace_only[1])), xywh(focus_a)) < box_iou(
        xywh(corners(rows[1])), xywh(focus_a)
    )


def test_an_unreadable_keyframe_is_named_and_the_trace_alone_is_boxed(channel):
    root, narrated = channel
    (root / "keyframes" / "ch" / "medical.png").write_bytes(b"not a png")
    messages: list[str] = []
    boxes = box(root, narrated.tables, log=messages.append)
    assert boxes.height == 3
    assert messages == ["a chunk 1: cannot read keyframe keyframes/ch/medical.png; boxing the trace alone"]


def test_dwelling_off_the_image_gives_no_box():
    x, y, w, h = REGION
    outside = trace([(t, x + w + 40.0, y + 100.0) for t in np.arange(0, 2, 0.1)])
    assert dwell_boxes(outside, REGION, keyframe(), BoxSettings()) == []


def test_the_reference_recipe_drops_clusters_outside_its_area_band():
    x, y, w, h = REGION
    rng = np.random.default_rng(0)
    wide = [(t, x + 60 + 60 * np.sin(3 * t), y + 60 + 60 * np.cos(3 * t)) for t in np.arange(0, 3, 0.1)]
    tiny = [(t, x + 220 + rng.normal(0, 1), y + 200 + rng.normal(0, 1)) for t in np.arange(4, 7, 0.1)]
    boxes = reference_boxes(trace(wide + tiny), REGION)
    assert len(boxes) == 1  # the tiny cluster is below 2% of the image
    box = boxes[0]
    assert box.start_s < 0.2 and box.end_s > 2.7
    assert 0.02 <= (box.x2 - box.x1) * (box.y2 - box.y1) / (w * h) <= 0.7


def test_the_phrase_is_what_was_said_while_the_pointer_dwelt():
    words = pl.DataFrame(
        {"word": ["Look", "at", "this", "focus.", "Next"], "start_s": [1.0, 1.3, 1.6, 1.9, 3.5]}
    )
    assert phrase_during(words, 1.5, 2.5, lead_s=0.3) == "at this focus."
    assert phrase_during(words, 1.5, 2.5, lead_s=0.0) == "this focus."


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"dwell_radius": 0.0}, "dwell_radius=0.0 must be positive"),
        ({"min_inside": 1.5}, "min_inside=1.5 must be at most 1"),
        ({"min_side": 0.5}, "min_side=0.5 must not exceed max_side=0.35"),
        ({"phrase_lead_s": -1.0}, "phrase_lead_s=-1.0 must be zero or more"),
    ],
)
def test_a_wrong_setting_is_named(changes, message):
    with pytest.raises(ValueError, match=message):
        replace(BoxSettings(), **changes).validated()


def test_the_picture_shows_each_box_on_its_image(channel):
    root, narrated = channel
    tables = narrated.tables
    boxes = box(root, tables)
    pictures = boxes_png(root, tables["stable_chunks"], boxes)
    assert list(pictures) == [("a", 1)]
    assert (
        boxes_png(root, tables["stable_chunks"], boxes, limit=0) == {}
    )  # pictures beyond the UI's are not drawn
    picture = cv2.imdecode(np.frombuffer(pictures[("a", 1)], np.uint8), cv2.IMREAD_COLOR)
    assert picture.shape[1] == 420 and picture.shape[0] > 420 * REGION[3] / REGION[2]
