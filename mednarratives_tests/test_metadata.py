"""What the asset pages of the UI show: tables with numbers rounded to what they mean, no column
or cell too wide, one row count, and contact sheets without empty tiles or words cut in two."""

from __future__ import annotations

import cv2
import dagster as dg
import numpy as np
import polars as pl
import pytest

from mednarratives_assets.contact_sheets import contact_sheet_png, fit_to_width, grid_columns, shorten
from mednarratives_assets.defs.metadata import markdown_preview, rounded, rounded_metadata
from mednarratives_assets.defs.video_downloads import video_downloads
from mednarratives_assets.defs.videos import videos
from mednarratives_assets.stages.aligned_pairs import _CAPTION_SCALE, _TILE_WIDTH, caption_lines, pair_picture
from mednarratives_tests.conftest import make_video

CAPTION = (
    "the axial computed tomography image shows a large right lower lobe consolidation with air"
    " bronchograms and a small parapneumonic effusion tracking along the posterior costophrenic angle"
)


def rows_of(markdown: str) -> list[list[str]]:
    """The table's cells, header first (the separator line left out)."""
    lines = [line for line in markdown.splitlines() if line.startswith("|") and "---" not in line]
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines]


def test_floats_are_rounded_per_column_seconds_to_hundredths_and_scores_to_thousandths():
    frame = pl.DataFrame(
        {
            "video_id": ["a", "b"],
            "duration_s": [62.766666666666666, 3.0],
            "medical_score": pl.Series([0.006, 0.9871234], dtype=pl.Float32),  # 0.006000000052154064
            "fps": [29.97002997002997, 25.0],
            "ratio": [0.00004321, 0.0],
        }
    )
    table = markdown_preview(frame, list(frame.columns), digits={"fps": 1}).value
    assert rows_of(table)[1:] == [
        ["a", "62.77", "0.006", "30.0", "4.3e-05"],
        ["b", "3.0", "0.987", "25.0", "0.0"],
    ]
    assert "0.00600000005" not in table and "62.7666" not in table


def test_scalar_metadata_floats_are_rounded_too():
    assert rounded(0.12345678) == 0.123 and rounded(62.766666, 2) == 62.77
    path = dg.MetadataValue.path("/data/models/frame_classifier.pt")
    given = {"acc": 0.91234, "by_kind": {"ct": 0.5555555}, "n": 3, "s": "x", "l": [0.11111], "path": path}
    assert rounded_metadata(given) == {
        "acc": 0.912,
        "by_kind": {"ct": 0.556},
        "n": 3,
        "s": "x",
        "l": [0.111],
        "path": path,
    }


def test_long_text_is_cut_at_a_word_boundary_with_an_ellipsis_and_wide_tables_keep_eight_columns():
    assert shorten(CAPTION, 40) == "the axial computed tomography image…"
    assert shorten("short text", 40) == "short text"
    assert shorten("pneumonoultramicroscopicsilicovolcanoconiosis", 10) == "pneumonou…"  # one long word
    frame = pl.DataFrame({f"c{i}": [CAPTION] for i in range(10)})
    table = markdown_preview(frame, list(frame.columns), max_chars={"c0": 30}).value
    [header, row] = rows_of(table)
    assert header == [f"c{i}" for i in range(8)]
    assert "_2 more columns:_ `c8`, `c9`" in table
    assert row[0] == "the axial computed tomography…"
    for cell in row:
        assert len(cell) <= 60 and cell.endswith("…")
        assert cell[:-1] == " ".join(CAPTION.split()[: len(cell[:-1].split())])  # whole words only


def test_pipes_and_newlines_stay_inside_their_cell():
    frame = pl.DataFrame({"text": ["a | b\nc"], "n": [1]})
    assert rows_of(markdown_preview(frame, ["text", "n"]).value)[1] == ["a \\| b c", "1"]


@pytest.mark.parametrize("n", range(1, 10))
def test_contact_sheets_are_sized_to_their_pictures_without_empty_tiles(n):
    """Grey pictures of two heights: any black in the sheet would be an empty tile or padding."""
    images = [np.full((60 + 30 * (i % 2), 120, 3), 128, np.uint8) for i in range(n)]
    png = contact_sheet_png(images, tile_width=120, columns=4)
    sheet = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert not (sheet < 100).all(axis=2).any()
    columns = grid_columns(n, 4)
    assert sheet.shape[1] == columns * 124  # 2 px of white on each side of every tile
    rows = -(-n // columns)
    assert columns * rows - n < rows  # every row but the last is full, the last is not empty
    assert columns <= min(n, 4)


def test_pair_captions_are_wrapped_at_word_boundaries_and_end_in_an_ellipsis(tmp_path):
    lines = caption_lines(CAPTION)
    assert len(lines) == 2 and lines[-1].endswith("...")
    words = " ".join(lines)[: -len("...")].split()
    assert words == CAPTION.split()[: len(words)]  # whole words, in order
    for line in lines:
        assert cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, _CAPTION_SCALE, 1)[0][0] <= _TILE_WIDTH - 8
    assert caption_lines("a short caption") == ["a short caption"]
    assert fit_to_width("x" * 200, 50, _CAPTION_SCALE).endswith("...")
    pair = {"image_path": "missing.png", "domain": "radiology", "video_id": "v", "chunk_index": 0}
    picture = pair_picture(tmp_path, {**pair, "n_boxes": 1, "corrected_caption": CAPTION})
    assert picture.shape[1] == _TILE_WIDTH
    assert picture[: _TILE_WIDTH // 2].mean() > 150  # a missing image is a grey tile that says so


def test_a_table_asset_reports_one_row_count(layout, resources, instance):
    """The IO manager and the asset report the rows under the same key: the page shows it once."""
    instance.add_dynamic_partitions("channel", ["radiology"])
    make_video(layout.channel_dir("radiology") / "chest_ct.mp4", seconds=0.5)
    result = dg.materialize(
        [video_downloads, videos], partition_key="radiology", resources=resources, instance=instance
    )
    for event in result.get_asset_materialization_events():
        keys = event.materialization.metadata.keys()
        assert [key for key in keys if "row_count" in key or key == "n_rows"] == ["dagster/row_count"], keys
    [downloads] = result.asset_materializations_for_node("video_downloads")
    [probed] = result.asset_materializations_for_node("videos")
    assert probed.metadata["dagster/row_count"].value == 1 and "dagster/row_count" in downloads.metadata
