"""Stable chunks on synthetic videos whose still spans, pointer and overlays are known exactly."""

from __future__ import annotations

import errno
from dataclasses import replace
from pathlib import Path

import cv2
import dagster as dg
import duckdb
import numpy as np
import polars as pl
import pytest

from mednarratives_assets.defs.frame_classifier import frame_classifier
from mednarratives_assets.defs.stable_chunks import stable_chunks
from mednarratives_assets.defs.videos import videos
from mednarratives_assets.evaluation.ground_truth import load_truth
from mednarratives_assets.evaluation.stage_scores import ChunkScore, box_iou
from mednarratives_assets.mp4 import write_mp4
from mednarratives_assets.stages import stable_chunks as stage
from mednarratives_assets.stages.narratives import NarrativeSettings, chunk_words
from mednarratives_assets.stages.stable_chunks import (
    STABLE_CHUNKS_SCHEMA,
    ChunkingSettings,
    chunk_channel,
    chunk_video,
    find_stable_spans,
    keyframes_intact,
    locate_image_region,
    median_keyframe,
)
from mednarratives_assets.synthetic.medical_images import packaged_images
from mednarratives_assets.synthetic.pointers import CursorStyle, paste_sprite, render_sprite
from mednarratives_assets.synthetic.slides import (
    SLIDE_DESIGNS,
    THEMES,
    bullet_slide,
    designed_image_slide,
    image_slide,
    title_slide,
)
from mednarratives_assets.synthetic.styles import split_designs
from mednarratives_assets.synthetic.vfr_video import VfrScene, vfr_video
from mednarratives_assets.video_cache import StageCache
from mednarratives_assets.video_frames import sample_video

SIZE = (640, 360)
FPS = 15
SETTINGS = ChunkingSettings()


@pytest.fixture(scope="module")
def pictures() -> list[np.ndarray]:
    by_id = {image.image_id: image for image in packaged_images()}
    return [by_id[name].load() for name in ("ct_head", "mri_liver", "histo_ihc")]


@pytest.fixture(scope="module")
def slides(pictures) -> dict[str, np.ndarray]:
    theme = THEMES["dark"]
    return {
        "title": title_slide(SIZE, theme, "Neuroradiology rounds", "case review"),
        "ct": image_slide(SIZE, theme, "CT head", pictures[0], ["hypodense focus"])[0],
        "mr": image_slide(SIZE, theme, "MRI liver", pictures[1], [])[0],
        "bullets": bullet_slide(SIZE, theme, "Key points", ["location", "size", "contrast"])[0],
    }


def pointer_path(n: int, rng: np.random.Generator) -> np.ndarray:
    """A pointer wandering smoothly over the frame: positions for n frames."""
    waypoints = rng.uniform([40, 60], [SIZE[0] - 40, SIZE[1] - 40], size=(max(2, n // 20 + 2), 2))
    t = np.linspace(0, len(waypoints) - 1, n)
    return np.stack([np.interp(t, np.arange(len(waypoints)), waypoints[:, k]) for k in range(2)], axis=1)


def render(
    path: Path,
    timeline: list[tuple[str, float]],
    slides: dict[str, np.ndarray],
    *,
    webcam: bool = False,
    noise: float = 0.0,
    seed: int = 0,
) -> Path:
    """A video from (slide name or effect, seconds) steps, with a moving pointer on top.

    Effects: "fade:<a>:<b>" cross-fades a to b; "zoom:<a>" slowly zooms a by 1.3x; "pan:<a>" slides
    a sideways by 10% of the width. A webcam inset in the corner shows a busy moving pattern.
    """
    rng = np.random.default_rng(seed)
    sprite = render_sprite(CursorStyle("arrow", "light", 18))
    total = sum(round(seconds * FPS) for _, seconds in timeline)
    pointer = pointer_path(total, rng)

    def frames():
        index = 0
        for step, seconds in timeline:
            n = round(seconds * FPS)
            kind, *names = step.split(":")
            for i in range(n):
                progress = i / max(n - 1, 1)
                if kind == "fade":
                    frame = cv2.addWeighted(slides[names[0]], 1 - progress, slides[names[1]], progress, 0)
                elif kind in ("zoom", "pan"):
                    scale = 1 + 0.3 * progress if kind == "zoom" else 1.1
                    shift = 0.0 if kind == "zoom" else 0.05 * SIZE[0] * (1 - 2 * progress)
                    cx, cy = SIZE[0] / 2, SIZE[1] / 2
                    affine = np.float32([[scale, 0, cx * (1 - scale) + shift], [0, scale, cy * (1 - scale)]])
                    frame = cv2.warpAffine(slides[names[0]], affine, SIZE)
                else:
                    frame = slides[kind].copy()
                if webcam:  # 20% of the width: far more change than the pointer is allowed
                    w, h = 128, 72
                    phase = index / FPS * 2.0
                    inset = np.full((h, w, 3), 90, np.uint8)
                    cv2.circle(inset, (int(64 + 30 * np.sin(phase)), 36), 20, (200, 160, 130), -1)
                    inset[rng.random((h, w)) < 0.05] = 255
                    frame[SIZE[1] - h - 12 : SIZE[1] - 12, SIZE[0] - w - 12 : SIZE[0] - 12] = inset
                if noise:
                    frame = np.clip(frame + rng.normal(0, noise, frame.shape), 0, 255).astype(np.uint8)
                paste_sprite(frame, sprite, *np.round(pointer[index]).astype(int))
                index += 1
                yield frame

    return write_mp4(path, frames(), fps=FPS)


def spans_of(path: Path, settings: ChunkingSettings = SETTINGS) -> list[tuple[float, float]]:
    return [
        (span.start_s, span.end_s)
        for span in find_stable_spans(
            sample_video(path, settings.sample_hz, settings.analysis_width), settings
        )
    ]


def test_still_spans_hold_against_pointer_noise_and_a_webcam_and_end_at_cuts_and_fades(tmp_path, slides):
    timeline = [("title", 3), ("ct", 4), ("fade:ct:mr", 0.5), ("mr", 4), ("bullets", 3)]
    video = render(tmp_path / "v.mp4", timeline, slides, webcam=True, noise=3.0)
    spans = spans_of(video)
    # The webcam is learned as an overlay once it has stayed busy across a cut; from then on it
    # cannot break a span. (Within the very first scene it still can: the title is not asserted.)
    expected = [(3.0, 7.0), (7.5, 11.5), (11.5, 14.5)]
    for start, end in expected:
        assert any(abs(s - start) <= 0.5 and abs(e - end) <= 0.5 for s, e in spans), (start, end, spans)
    assert all(e - s >= SETTINGS.min_duration_s for s, e in spans)


def test_without_the_overlay_mask_the_webcam_would_break_every_span(tmp_path, slides):
    """The same video with the mask made useless (no region small enough) finds nothing still."""
    timeline = [("ct", 4), ("mr", 4)]
    video = render(tmp_path / "v.mp4", timeline, slides, webcam=True)
    no_mask = ChunkingSettings(max_overlay_fraction=1e-6)
    assert spans_of(video, no_mask) == []


def test_slow_zoom_and_pan_are_not_stable(tmp_path, slides):
    timeline = [("ct", 3), ("zoom:mr", 5), ("pan:ct", 5), ("bullets", 3)]
    spans = spans_of(render(tmp_path / "v.mp4", timeline, slides))
    for start, end in spans:
        moving_overlap = max(0.0, min(end, 13.0) - max(start, 3.0))
        assert moving_overlap <= 0.5, spans
    assert len(spans) == 2, spans


def test_the_median_keyframe_drops_the_moving_pointer(tmp_path, slides):
    video = render(tmp_path / "v.mp4", [("ct", 5)], slides)
    rows, sheet = chunk_video(video, tmp_path / "keyframes", lambda frames: np.ones(len(frames)), SETTINGS)
    assert len(rows) == 1 and sheet is not None and sheet.startswith(b"\x89PNG")
    keyframe = cv2.cvtColor(cv2.imread(rows[0]["keyframe_path"]), cv2.COLOR_BGR2RGB)
    off = np.abs(keyframe.astype(int) - slides["ct"]).max(axis=2) > 40
    single = (
        np.abs(next(sample_video(video, 6, 160)).frame[..., ::-1].astype(int) - slides["ct"]).max(axis=2) > 40
    )
    assert single.sum() > 30  # a raw frame shows the pointer...
    assert off.mean() < 0.0005, off.sum()  # ...the median does not


def test_sampling_only_spans_retrieves_inside_them_and_stops_after_the_last(tmp_path, slides, monkeypatch):
    video = render(tmp_path / "v.mp4", [("ct", 4)], slides)
    grabs = []
    open_capture = cv2.VideoCapture

    class CountingCapture:  # wraps rather than subclasses: a Python subclass of it crashes PyAV later
        def __init__(self, *args):
            self.capture = open_capture(*args)

        def grab(self):
            grabs.append(1)
            return self.capture.grab()

        def __getattr__(self, name):
            return getattr(self.capture, name)

    monkeypatch.setattr(cv2, "VideoCapture", CountingCapture)
    times = [sample.t for sample in sample_video(video, 5, 160, spans=[(0.5, 1.0), (2.0, 2.4)])]
    assert times == pytest.approx([0.6, 0.8, 1.0, 2.0, 2.2, 2.4], abs=0.07)
    assert len(grabs) < 2.6 * FPS  # not the 4 s of the whole video
    assert list(sample_video(video, 5, 160, spans=[])) == []


def test_median_keyframe_is_the_per_pixel_median():
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(5)]
    np.testing.assert_array_equal(
        median_keyframe(frames), np.median(np.stack(frames), axis=0).astype(np.uint8)
    )


def test_a_repeated_slide_points_at_the_first_keyframe_and_reruns_leave_no_stale_files(tmp_path, slides):
    video = render(tmp_path / "v.mp4", [("ct", 3), ("bullets", 3), ("ct", 3)], slides)
    folder = tmp_path / "keyframes"
    folder.mkdir()
    (folder / "chunk-099.png").write_bytes(b"stale")
    rows, _ = chunk_video(video, folder, lambda frames: np.zeros(len(frames)), SETTINGS)
    assert [r["duplicate_of"] for r in rows] == [None, None, 0]
    assert rows[2]["keyframe_path"] == rows[0]["keyframe_path"]
    assert sorted(p.name for p in folder.iterdir()) == ["chunk-000.png", "chunk-001.png"]
    again, _ = chunk_video(video, folder, lambda frames: np.zeros(len(frames)), SETTINGS)
    assert again == rows


@pytest.mark.parametrize("theme", sorted(THEMES))
def test_the_medical_image_is_located_on_the_slide(theme, pictures):
    for picture, notes in ((pictures[0], ["a note", "another note"]), (pictures[2], [])):
        slide, (x, y, w, h) = image_slide((1280, 720), THEMES[theme], "Heading", picture, notes)
        found = locate_image_region(cv2.cvtColor(slide, cv2.COLOR_RGB2BGR))
        assert found is not None
        assert box_iou(found, (x, y, w, h)) >= 0.95, (theme, found, (x, y, w, h))
    text_only = bullet_slide((1280, 720), THEMES[theme], "Key points", ["one", "two"])[0]
    assert locate_image_region(cv2.cvtColor(text_only, cv2.COLOR_RGB2BGR)) is None


@pytest.mark.parametrize("design", split_designs("training"))
@pytest.mark.parametrize("text_position", ["beside", "below"])
def test_two_pictures_on_a_slide_are_one_region(design, text_position, pictures):
    """The lecturer points at either picture, so the region spans both (before: the larger alone,
    IoU 0.44 to 0.49 against both)."""
    slide = designed_image_slide(
        (1280, 720),
        SLIDE_DESIGNS[design],
        "Heading",
        pictures[:2],
        ["a note"],
        text_position,
        1,
        np.random.default_rng(0),
    )
    x0, y0 = min(r[0] for r in slide.image_rects), min(r[1] for r in slide.image_rects)
    x1 = max(r[0] + r[2] for r in slide.image_rects)
    y1 = max(r[1] + r[3] for r in slide.image_rects)
    both = (x0, y0, x1 - x0, y1 - y0)
    found = locate_image_region(cv2.cvtColor(slide.pixels, cv2.COLOR_RGB2BGR))
    assert found is not None
    assert box_iou(found, both) >= 0.8, (design, found, both)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"min_duration_s": 0}, "min_duration_s=0"),
        ({"sample_hz": -1.0}, "sample_hz=-1.0"),
        ({"max_changed_fraction": 1.5}, "max_changed_fraction=1.5"),
        ({"duplicate_distance": -1}, "duplicate_distance=-1"),
    ],
)
def test_a_wrong_setting_is_named(changes, message):
    with pytest.raises(ValueError, match=message):
        ChunkingSettings(**changes).validated()


def test_a_broken_video_is_reported_and_the_others_are_chunked(tmp_path, slides):
    root = tmp_path / "data"
    render(root / "videos" / "ch" / "good.mp4", [("ct", 3)], slides)
    (root / "videos" / "ch" / "broken.mp4").write_bytes(b"\x00" * 4096)
    videos = pl.DataFrame(
        {
            "video_id": ["good", "broken", "unprobed"],
            "path": ["videos/ch/good.mp4", "videos/ch/broken.mp4", "videos/ch/unprobed.mp4"],
            "duration_s": [3.0, 3.0, None],
            "status": ["ok", "ok", "error"],
            "error": [None, None, "moov atom not found"],
        }
    )
    result = chunk_channel(root, root / "keyframes", "ch", videos, lambda f: np.full(len(f), 0.9), SETTINGS)
    by_video = {row["video_id"]: row for row in result.videos.iter_rows(named=True)}
    assert by_video["good"]["status"] == "ok" and by_video["good"]["n_medical"] == 1
    assert by_video["broken"]["status"] == "error" and "broken.mp4" in by_video["broken"]["reason"]
    assert by_video["unprobed"]["reason"] == "video unreadable: moov atom not found"
    assert result.chunks["video_id"].to_list() == ["good"]
    assert set(result.contact_sheets) == {"good"}


def test_the_assets_use_the_shipped_classifier_until_one_is_trained_and_write_the_table(
    layout, resources, instance, slides
):
    render(layout.channel_dir("ch") / "a.mp4", [("title", 3), ("ct", 3)], slides)
    render(layout.channel_dir("ch") / "b.mp4", [("bullets", 3)], slides)
    instance.add_dynamic_partitions("channel", ["ch"])
    dg.materialize([videos, stable_chunks], partition_key="ch", resources=resources, instance=instance)
    with duckdb.connect(str(layout.duckdb_path), read_only=True) as con:
        medical = con.sql("SELECT video_id, chunk_index FROM stable_chunks WHERE is_medical").fetchall()
    assert medical == [("a", 1)]  # the shipped classifier finds the CT slide, and only it

    tiny = {"frames_per_class": 12, "epochs": 1, "extra_images_dir": "", "confirm_training": True}
    trained = dg.materialize(
        [frame_classifier],
        resources=resources,
        instance=instance,
        run_config={"ops": {"frame_classifier": {"config": tiny}}},
    )
    metadata = trained.asset_materializations_for_node("frame_classifier")[0].metadata
    assert 0.0 <= metadata["held_out_accuracy"].value <= 1.0
    assert layout.frame_classifier_path.is_file()

    result = dg.materialize(
        [videos, stable_chunks], partition_key="ch", resources=resources, instance=instance
    )
    [materialization] = result.asset_materializations_for_node("stable_chunks")
    assert "data:image/png;base64," in materialization.metadata["keyframes a"].value
    with duckdb.connect(str(layout.duckdb_path), read_only=True) as con:
        table = con.sql("FROM stable_chunks ORDER BY video_id, chunk_index").pl()
    assert table.columns == list(STABLE_CHUNKS_SCHEMA)
    assert table.select("video_id", "chunk_index").rows() == [("a", 0), ("a", 1), ("b", 0)]
    for path in table["keyframe_path"]:
        assert path.startswith("keyframes/ch/") and (layout.data_root / path).is_file()
    assert table.filter(pl.col("chunk_index") == 1)["image_w"].item() > 0  # the CT slide's picture


def test_on_the_default_demo_corpus_chunks_and_medical_slides_match_the_truth(
    default_demo_corpus, default_frame_classifier, tmp_path
):
    """The corpus `mednarratives demo` makes, at 1280x720, against its ground truth."""
    layout, entries = default_demo_corpus
    score = ChunkScore()
    for entry in entries:
        truth = load_truth(layout.data_root / entry["truth"])
        rows, _ = chunk_video(
            layout.data_root / entry["video"],
            tmp_path / truth["channel"] / truth["video_id"],
            default_frame_classifier.medical_scores,
            SETTINGS,
            truth["duration_s"],
        )
        score.add(rows, truth)
    assert score.boundaries_truth >= 20 and score.medical_truth >= 6
    assert score.boundary_f1 >= 0.95, score
    assert score.medical_precision >= 0.9 and score.medical_recall >= 0.9, score
    assert min(score.region_ious) >= 0.9, score.region_ious


def test_a_failed_rerun_keeps_the_stored_keyframes_and_leaves_no_partial_folder(tmp_path, slides):
    video = render(tmp_path / "v.mp4", [("ct", 3), ("bullets", 3)], slides)
    folder = tmp_path / "keyframes"
    rows, _ = chunk_video(video, folder, lambda frames: np.ones(len(frames)), SETTINGS)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(ValueError):  # a scorer that answers for too few keyframes
        chunk_video(video, folder, lambda frames: np.ones(len(frames) - 1), SETTINGS)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before and len(before) == len(rows)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []


def test_median_keyframe_by_strips_equals_the_whole_frame_median(monkeypatch):
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (37, 50, 3), dtype=np.uint8)
    frames = [
        np.clip(base.astype(int) + rng.integers(-3, 4, base.shape), 0, 255).astype(np.uint8) for _ in range(7)
    ]
    for frame in frames[:3]:  # a pointer-like spot that disagrees by far more than noise
        top = rng.integers(0, 30)
        frame[top : top + 5, 10:20] = 255
    whole = stage._median_of(frames)
    monkeypatch.setattr(stage, "MEDIAN_STRIP_PIXELS", 120)  # strips of 2 rows, the last one short
    np.testing.assert_array_equal(median_keyframe(frames), whole)


# A screen recording's timeline: the CT slide is truly shown from 16.1 s to 30.8 s (the case of
# issue 18, which average-fps timing put at 29.2-43.1 s).
VFR_CHANGES = [0.0, 16.1, 30.8, 40.0]


@pytest.fixture(scope="module")
def screen_recording(tmp_path_factory, slides):
    """Variable frame rate: still slides at about 5 frames a second, the CT slide with a moving
    pointer at about 30, irregular gaps throughout."""
    scenes = [
        VfrScene(slides["title"], 16.1, 5),
        VfrScene(slides["ct"], 14.7, 30, jitter=0.3, pointer=True),
        VfrScene(slides["bullets"], 9.2, 5),
    ]
    video = vfr_video(tmp_path_factory.mktemp("vfr") / "recording.mp4", scenes, seed=7)
    assert video.scene_starts == pytest.approx(VFR_CHANGES[:3]) and video.duration_s == pytest.approx(40.0)
    return video


@pytest.fixture(scope="module")
def recording_chunks(screen_recording, tmp_path_factory) -> list[dict]:
    """The screen recording's stable chunks, every one called medical."""
    rows, _ = chunk_video(
        screen_recording.path,
        tmp_path_factory.mktemp("vfr-keyframes"),
        lambda frames: np.ones(len(frames)),
        SETTINGS,
        screen_recording.duration_s,
    )
    return rows


def test_a_variable_frame_rate_video_is_chunked_at_its_true_times(recording_chunks):
    rows = recording_chunks
    found = [(row["start_s"], row["end_s"]) for row in rows]
    truth = list(zip(VFR_CHANGES, VFR_CHANGES[1:], strict=False))
    assert len(found) == len(truth), found
    for (start, end), (true_start, true_end) in zip(found, truth, strict=True):
        assert abs(start - true_start) <= 1 / SETTINGS.sample_hz, (found, truth)
        assert abs(end - true_end) <= 1 / SETTINGS.sample_hz, (found, truth)


def test_words_spoken_during_a_slide_are_paired_with_its_chunk(recording_chunks):
    """The narratives stage takes a chunk's words by time (`chunk_words`): on the variable-frame-rate
    video each slide's chunk gets the words said while it was shown, and no other slide's."""
    rows = recording_chunks
    words = []
    for slide, (start, end) in enumerate(zip(VFR_CHANGES, VFR_CHANGES[1:], strict=False)):
        for j, t in enumerate(np.arange(start + 0.7, end - 0.7, 0.45)):
            words.append({"start_s": float(t), "end_s": float(t) + 0.3, "word": f"slide{slide}-{j}"})
    words = pl.DataFrame(words)
    padding = NarrativeSettings().padding_s
    assert len(rows) == 3
    for slide, row in enumerate(rows):
        said = chunk_words(words, row["start_s"], row["end_s"], padding)["word"].to_list()
        spoken = [w for w in words["word"] if w.startswith(f"slide{slide}-")]
        assert said == spoken, (slide, row["start_s"], row["end_s"])


@pytest.mark.parametrize(
    ("batch_bytes", "calls"),
    [
        # Each keyframe is on disk before it is scored, and is scored as soon as the batch is full.
        (
            1,
            [
                (1, ["chunk-000.png"]),
                (1, ["chunk-000.png", "chunk-001.png"]),
                (1, ["chunk-000.png", "chunk-001.png", "chunk-002.png"]),
            ],
        ),
        # Two 640x360 keyframes fill a batch of 1 MB: the third waits for the end of the video.
        (
            1 << 20,
            [
                (2, ["chunk-000.png", "chunk-001.png"]),
                (1, ["chunk-000.png", "chunk-001.png", "chunk-002.png"]),
            ],
        ),
    ],
)
def test_keyframes_are_written_as_they_are_made_and_scored_in_small_batches(
    tmp_path, slides, monkeypatch, batch_bytes, calls
):
    video = render(tmp_path / "v.mp4", [("title", 3), ("ct", 3), ("bullets", 3)], slides)
    seen = []

    def score(frames):
        (staging,) = tmp_path.glob(".keyframes.*.partial")
        seen.append((len(frames), sorted(p.name for p in staging.iterdir())))
        return np.arange(len(frames)) / 10 + 0.3

    monkeypatch.setattr(stage, "SCORE_BATCH_BYTES", batch_bytes)
    rows, _ = chunk_video(video, tmp_path / "keyframes", score, SETTINGS)
    assert seen == calls
    expected = [0.3, 0.4, 0.3] if batch_bytes > 1 else [0.3, 0.3, 0.3]
    assert [r["medical_score"] for r in rows] == pytest.approx(expected)
    assert [r["is_medical"] for r in rows] == [s >= SETTINGS.medical_threshold for s in expected]


def test_two_runs_on_one_video_never_share_a_folder(tmp_path, slides):
    """A second run that starts and finishes while the first is writing: both complete, and the
    folder holds one run's keyframes whole (a shared `.partial` folder once lost both)."""
    video = render(tmp_path / "v.mp4", [("ct", 3), ("bullets", 3)], slides)
    folder = tmp_path / "keyframes"
    inner = []

    def score_and_run_again(frames):
        if not inner:
            inner.append(chunk_video(video, folder, lambda f: np.ones(len(f)), SETTINGS))
        return np.ones(len(frames))

    rows, _ = chunk_video(video, folder, score_and_run_again, SETTINGS)
    assert [r["keyframe_sha256"] for r in inner[0][0]] == [r["keyframe_sha256"] for r in rows]
    assert sorted(p.name for p in folder.iterdir()) == ["chunk-000.png", "chunk-001.png"]
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []


def channel_videos(root: Path, ids: list[str]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "video_id": ids,
            "path": [f"videos/ch/{v}.mp4" for v in ids],
            "duration_s": [6.0] * len(ids),
            "status": ["ok"] * len(ids),
            "error": [None] * len(ids),
        }
    )


def test_a_full_disk_fails_the_channel_and_keeps_the_stored_keyframes(tmp_path, slides, monkeypatch):
    """ENOSPC while writing a keyframe is the machine's fault: chunk_channel raises it, naming the
    file, rather than store "chunking failed" for a good video; the stored keyframes stay."""
    root = tmp_path / "data"
    render(root / "videos" / "ch" / "good.mp4", [("ct", 3), ("bullets", 3)], slides)
    videos = channel_videos(root, ["good"])
    stored = root / "keyframes" / "ch" / "good"
    first = chunk_channel(root, root / "keyframes", "ch", videos, lambda f: np.ones(len(f)), SETTINGS)
    assert first.chunks.height == 2
    before = {p.name: p.read_bytes() for p in stored.iterdir()}

    write_bytes = Path.write_bytes

    def disk_full(self, data):
        if self.name.startswith("chunk-"):
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return write_bytes(self, data)

    monkeypatch.setattr(Path, "write_bytes", disk_full)
    with pytest.raises(OSError, match="No space left on device") as caught:
        chunk_channel(root, root / "keyframes", "ch", videos, lambda f: np.ones(len(f)), SETTINGS)
    assert caught.value.errno == errno.ENOSPC and "chunk-000.png" in caught.value.filename
    assert {p.name: p.read_bytes() for p in stored.iterdir()} == before
    assert [p.name for p in stored.parent.iterdir()] == ["good"]  # no temporary left behind


def test_a_video_that_resolves_outside_the_data_root_is_refused(tmp_path, slides):
    root = tmp_path / "data"
    elsewhere = render(tmp_path / "elsewhere" / "secret.mp4", [("ct", 3)], slides)
    render(root / "videos" / "ch" / "good.mp4", [("ct", 3)], slides)
    (root / "videos" / "ch" / "link.mp4").symlink_to(elsewhere)
    videos = channel_videos(root, ["good", "link"])
    result = chunk_channel(root, root / "keyframes", "ch", videos, lambda f: np.ones(len(f)), SETTINGS)
    by_video = {row["video_id"]: row for row in result.videos.iter_rows(named=True)}
    assert by_video["good"]["status"] == "ok"
    assert by_video["link"]["status"] == "error"
    assert "resolves outside the data root" in by_video["link"]["reason"]
    assert result.chunks["video_id"].to_list() == ["good"]
    assert not (root / "keyframes" / "ch" / "link").exists()


def test_a_channel_name_that_would_leave_the_keyframe_folder_is_refused(tmp_path):
    with pytest.raises(ValueError, match="invalid channel name"):
        chunk_channel(
            tmp_path, tmp_path / "keyframes", "../x", channel_videos(tmp_path, []), np.ones, SETTINGS
        )


def test_a_cached_video_is_not_chunked_again_unless_its_keyframes_or_settings_changed(tmp_path, slides):
    root = tmp_path / "data"
    render(root / "videos" / "ch" / "a.mp4", [("ct", 3), ("bullets", 3)], slides)
    render(root / "videos" / "ch" / "b.mp4", [("title", 3), ("ct", 3)], slides)
    videos = channel_videos(root, ["a", "b"]).with_columns(sha256=pl.Series(["sha-a", "sha-b"]))
    scored: list[int] = []

    def score(frames):
        scored.append(len(frames))
        return np.ones(len(frames))

    def run(settings=SETTINGS):
        cache = StageCache.open(root / "cache", "stable_chunks", "ch", videos, settings)
        result = chunk_channel(root, root / "keyframes", "ch", videos, score, settings, cache=cache)
        return result, cache

    first, cache = run()
    assert (cache.computed, cache.reused) == (["a", "b"], [])
    assert first.videos["from_cache"].to_list() == [False, False]
    scored.clear()
    again, cache = run()
    assert (cache.computed, cache.reused) == ([], ["a", "b"]) and scored == []
    assert again.chunks.equals(first.chunks)
    assert again.videos["from_cache"].to_list() == [True, True]

    (root / again.chunks.filter(pl.col("video_id") == "b")["keyframe_path"][0]).unlink()
    repaired, cache = run()
    assert (cache.computed, cache.reused) == (["b"], ["a"])
    assert repaired.chunks.equals(first.chunks)
    assert keyframes_intact(root, repaired.chunks)

    _, cache = run(replace(SETTINGS, min_duration_s=1.5))
    assert cache.computed == ["a", "b"]
