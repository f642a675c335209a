"""The corpus runner and the report helper that every script in benchmarks/ uses."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pytest

from mednarratives_assets.evaluation import corpus
from mednarratives_assets.evaluation.corpus import Lecture, Stopwatch, lectures_of, run_channels, run_lectures
from mednarratives_assets.evaluation.ground_truth import TRUTH_FORMAT
from mednarratives_assets.evaluation.report import Check, markdown_table, peak_rss_mb, print_checks


def write_lecture(
    data_root: Path, channel: str, video_id: str, duration_s: float, video: bool = True
) -> None:
    """A ground-truth file as load_truth accepts it and, unless told otherwise, a stand-in video."""
    truth_file = data_root / "ground_truth" / channel / f"{video_id}.json"
    truth_file.parent.mkdir(parents=True, exist_ok=True)
    truth = {"format": TRUTH_FORMAT, "channel": channel, "video_id": video_id, "duration_s": duration_s}
    truth_file.write_text(json.dumps(truth))
    if video:
        video_file = data_root / "videos" / channel / f"{video_id}.mp4"
        video_file.parent.mkdir(parents=True, exist_ok=True)
        video_file.write_bytes(b"not decoded by the runner")


@pytest.fixture
def fake_corpus(tmp_path: Path) -> Path:
    """Two channels, three lectures with a video (10 + 20 + 30 s) and one without (skipped)."""
    root = tmp_path / "data"
    write_lecture(root, "pathology-atlas", "lecture-01", 10.0)
    write_lecture(root, "radiology-rounds", "lecture-01", 20.0)
    write_lecture(root, "radiology-rounds", "lecture-02", 30.0)
    write_lecture(root, "radiology-rounds", "lecture-03", 99.0, video=False)
    # the corpus manifest sits beside the channels' folders and is no lecture
    (root / "ground_truth" / "demo-corpus.json").write_text(json.dumps({"lectures": []}))
    return root


@pytest.fixture
def clock(monkeypatch) -> SimpleNamespace:
    """The runner's clock, moved on by hand: `clock.now += seconds`."""
    fake = SimpleNamespace(now=100.0)
    monkeypatch.setattr(corpus, "time", SimpleNamespace(perf_counter=lambda: fake.now))
    return fake


def names(lectures: list[Lecture]) -> list[str]:
    return [f"{lecture.truth['channel']}/{lecture.truth['video_id']}" for lecture in lectures]


def test_lectures_of_lists_the_lectures_with_a_video_channel_by_channel(fake_corpus):
    lectures = lectures_of([str(fake_corpus)])
    assert names(lectures) == [
        "pathology-atlas/lecture-01",
        "radiology-rounds/lecture-01",
        "radiology-rounds/lecture-02",
    ]
    assert all(lecture.corpus == fake_corpus for lecture in lectures)
    assert lectures[1].video == fake_corpus / "videos" / "radiology-rounds" / "lecture-01.mp4"


def test_run_lectures_calls_the_function_per_lecture_and_times_only_its_sections(fake_corpus, clock):
    calls = []

    def per_lecture(lecture: Lecture, stopwatch: Stopwatch) -> str:
        calls.append(lecture.video.stem)
        clock.now += 7.0  # preparing the input: not counted
        with stopwatch.timed():
            clock.now += lecture.truth["duration_s"] / 10  # the stage runs at 10x real time
        with stopwatch.timed("decode"):
            clock.now += 1.0
        return lecture.truth["channel"]

    run = run_lectures([fake_corpus], per_lecture)
    assert calls == ["lecture-01", "lecture-01", "lecture-02"]
    assert run.results == ["pathology-atlas", "radiology-rounds", "radiology-rounds"]
    assert len(run.lectures) == 3
    assert run.video_s == pytest.approx(60.0)
    assert run.seconds["stage"] == pytest.approx(6.0)
    assert run.seconds["decode"] == pytest.approx(3.0)
    assert run.x_real_time == pytest.approx(10.0)
    assert run.rate(run.video_s, "decode") == pytest.approx(20.0)
    assert run.rate(12, "decode") == pytest.approx(4.0)


def test_run_lectures_goes_over_every_corpus_in_turn(fake_corpus, tmp_path, clock):
    other = tmp_path / "other"
    write_lecture(other, "imaging-review", "lecture-07", 5.0)
    run = run_lectures([other, fake_corpus], lambda lecture, stopwatch: lecture.corpus)
    assert run.results == [other, fake_corpus, fake_corpus, fake_corpus]
    assert run.video_s == pytest.approx(65.0)


def test_an_empty_corpus_gives_an_empty_run(tmp_path, clock):
    run = run_lectures([tmp_path / "nothing"], lambda lecture, stopwatch: pytest.fail("no lecture to run"))
    assert run.lectures == [] and run.results == []
    assert run.video_s == 0 and run.x_real_time == 0


def test_run_channels_calls_the_function_once_per_channel_of_each_corpus(fake_corpus, clock):
    def per_channel(lectures: list[Lecture], stopwatch: Stopwatch) -> list[str]:
        with stopwatch.timed("boxes"):
            clock.now += 2.0
        return names(lectures)

    # a data root given twice runs twice, as each of its lectures counts twice
    run = run_channels([fake_corpus, fake_corpus], per_channel)
    assert (
        run.results
        == [
            ["pathology-atlas/lecture-01"],
            ["radiology-rounds/lecture-01", "radiology-rounds/lecture-02"],
        ]
        * 2
    )
    assert len(run.lectures) == 6
    assert run.video_s == pytest.approx(120.0)
    assert run.seconds["boxes"] == pytest.approx(8.0)
    assert run.seconds["stage"] == 0.0  # never timed


@pytest.mark.parametrize(
    ("check", "line"),
    [
        # the lines benchmarks/chunks.py printed before the report helper existed
        (
            Check("boundary F1 (±0.5 s)", 1.0, 0.95),
            "boundary F1 (±0.5 s)       1.000   target >= 0.950   PASS",
        ),
        (Check("medical recall", 0.5, 0.95), "medical recall             0.500   target >= 0.950   FAIL"),
        (Check("medical precision", 0.95, 0.95), "medical precision          0.950   target >= 0.950   PASS"),
        (
            Check("speed (x real time)", 18.8, 20.0, "{:.1f}".format),
            "speed (x real time)         18.8   target >= 20.0   FAIL",
        ),
    ],
)
def test_a_higher_is_better_check_prints_its_aligned_line(check, line):
    assert check.line(name_width=24, value_width=7) == line


def test_a_lower_is_better_check_passes_only_below_its_target():
    def false_positives(rate: float, relation: str = "<") -> Check:
        return Check("false-positive rate", rate, 0.02, "{:.4f}".format, relation)

    # the line benchmarks/cursor.py printed
    assert false_positives(0.0).line(22, 8) == "false-positive rate      0.0000   target < 0.0200   PASS"
    assert false_positives(1.0).line(22, 8) == "false-positive rate      1.0000   target < 0.0200   FAIL"
    assert false_positives(0.02).verdict == "FAIL"
    assert false_positives(0.02, "<=").verdict == "PASS"
    assert false_positives(0.021, "<=").verdict == "FAIL"


def test_a_check_shows_value_and_target_its_own_way():
    start_error = Check("median word-start error", 0.151, 0.150, lambda s: f"{s * 1000:.0f} ms", "<=")
    assert start_error.requirement == "<= 150 ms"
    assert start_error.show(start_error.value) == "151 ms"
    assert not start_error.passed
    assert Check("WER with corrections", 0.0072, 0.12, "{:.0%}".format, "<=").requirement == "<= 12%"
    assert Check("x real time", 33.9, 10.0, "{:g}".format).requirement == ">= 10"


def test_a_missing_figure_fails_and_an_unknown_relation_is_refused():
    assert Check("boundary F1", math.nan, 0.95).verdict == "FAIL"
    assert Check("false-positive rate", math.nan, 0.02, relation="<").verdict == "FAIL"
    with pytest.raises(ValueError, match="'=>'"):
        Check("boundary F1", 1.0, 0.95, relation="=>")


def test_print_checks_prints_one_line_per_check(capsys):
    print_checks([Check("a", 1.0, 0.5), Check("bb", 0.1, 0.5)], name_width=4, value_width=6)
    assert capsys.readouterr().out == (
        "a     1.000   target >= 0.500   PASS\nbb    0.100   target >= 0.500   FAIL\n"
    )


def high_water_mb(status: str) -> float:
    """The kernel's own peak resident set (VmHWM, in kB) from a /proc/<pid>/status text, in MB."""
    kb = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(kb) / 1024


def test_peak_rss_is_the_kernels_high_water_mark_in_megabytes():
    before = high_water_mb(Path("/proc/self/status").read_text())
    peak = peak_rss_mb()
    assert before - 1 <= peak <= high_water_mb(Path("/proc/self/status").read_text()) + 1


def test_peak_rss_of_children_is_that_of_the_largest_finished_child():
    """A small process runs a child that touches 300 MB, then reads its children's peak.

    Not from this process: a child started from it would inherit this process's peak across exec.
    """
    child = (
        "import numpy as np, pathlib\n"
        "block = np.ones(300 * 2**20, np.uint8)\n"
        "print(pathlib.Path('/proc/self/status').read_text())\n"
    )
    parent = (
        "import subprocess, sys\n"
        "from mednarratives_assets.evaluation.report import peak_rss_mb\n"
        f"print(subprocess.check_output([sys.executable, '-c', {child!r}], text=True))\n"
        "print('children', peak_rss_mb(children=True))\n"
    )
    output = subprocess.check_output([sys.executable, "-c", parent], text=True)
    child_mb = high_water_mb(output)
    children_line = next(line for line in output.splitlines() if line.startswith("children "))
    assert child_mb > 300
    assert float(children_line.split()[1]) == pytest.approx(child_mb, abs=2)


def test_markdown_table_prints_every_row_with_three_decimals():
    frame = pl.DataFrame(
        {"benchmark": ["held-out pairs", "MedPix dev"], "n": [153, 197], "genmedclip_model": [0.16312, None]}
    )
    assert markdown_table(frame) == (
        "| benchmark      | n   | genmedclip_model |\n"
        "|----------------|-----|------------------|\n"
        "| held-out pairs | 153 | 0.163            |\n"
        "| MedPix dev     | 197 | null             |"
    )
    long = pl.DataFrame({"row": range(40), "value": [k / 7 for k in range(40)]})
    lines = markdown_table(long, float_precision=2).splitlines()
    assert len(lines) == 42  # header, rule and all 40 rows: nothing elided
    assert lines[-1] == "| 39  | 5.57  |"
