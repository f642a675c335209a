"""The demo corpus: generated lectures whose ground truth agrees with the pixels and the sound."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from mednarratives_assets.demo.corpus import (
    DemoCorpusConfig,
    corpus_is_current,
    generate_corpus,
    render_lecture,
)
from mednarratives_assets.evaluation.ground_truth import SENTENCE_ROLES, load_truth
from mednarratives_assets.settings import DataLayout
from mednarratives_assets.synthetic.pointers import CursorStyle, placed_sprite, render_sprite

SMALL = DemoCorpusConfig(seed=7, channels=3, videos_per_channel=1, seconds=20, width=640, height=360, fps=15)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[DataLayout, list[dict]]:
    root = tmp_path_factory.mktemp("corpus") / "data"
    layout = DataLayout.at(root)
    return layout, generate_corpus(layout, SMALL, workers=2, log=lambda _: None)


def decode_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def decode_audio(path: Path, rate: int = 16_000) -> np.ndarray:
    """Mono float audio placed by each frame's timestamp, so the encoder's priming cannot shift it."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
    pieces = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            start = float(frame.pts * frame.time_base) if frame.pts is not None else None
            for out in resampler.resample(frame):
                pieces.append((start, out.to_ndarray().reshape(-1)))
    total = max(round(s * rate) + len(p) for s, p in pieces)
    audio = np.zeros(total, np.float32)
    for start, piece in pieces:
        offset = max(round(start * rate), 0)
        audio[offset : offset + len(piece)] = piece[: total - offset]
    return audio


def sprite_residual(
    frame: np.ndarray, truth: dict, x: float, y: float, search: int
) -> tuple[float, tuple[float, float]]:
    """Best match of the truth's cursor sprite, placed at (x, y)'s sub-pixel offset, within `search`
    pixels of (x, y): the mean squared error over its opaque pixels, and the hotspot there."""
    cursor = truth["cursor"]
    sprite = render_sprite(CursorStyle(cursor["shape"], cursor["theme"], cursor["size_px"], cursor["shadow"]))
    placed, col, row = placed_sprite(sprite, x, y)
    h, w = placed.shape[:2]
    mask = (placed[..., 3] > 0.999).astype(np.float32)
    x0, y0 = col - search, row - search
    window = frame[max(y0, 0) : y0 + h + 2 * search, max(x0, 0) : x0 + w + 2 * search]
    scores = cv2.matchTemplate(
        window.astype(np.float32),
        np.ascontiguousarray(placed[..., :3]),
        cv2.TM_SQDIFF,
        mask=np.repeat(mask[..., None], 3, axis=2),
    )
    best, _, (bx, by), _ = cv2.minMaxLoc(scores)
    return best / (mask.sum() * 3), (x + max(x0, 0) + bx - col, y + max(y0, 0) + by - row)


def test_cursor_pixels_sit_at_the_truth_hotspot(corpus):
    layout, entries = corpus
    for entry in entries:
        truth = load_truth(layout.data_root / entry["truth"])
        frames = decode_frames(layout.data_root / entry["video"])
        assert len(frames) == truth["n_frames"]
        cursor = truth["cursor"]
        sprite_w, sprite_h = cursor["sprite_wh"]
        inside = [
            i
            for i, seen in enumerate(cursor["visible"])
            if seen
            and 2 * sprite_w < cursor["x"][i] < truth["width"] - 2 * sprite_w
            and 2 * sprite_h < cursor["y"][i] < truth["height"] - 2 * sprite_h
        ]
        hidden = [i for i, seen in enumerate(cursor["visible"]) if not seen]
        assert len(inside) > 30 and hidden, entry["video_id"]
        visible_errors = []
        for i in inside[:: max(1, len(inside) // 25)]:
            residual, found = sprite_residual(frames[i], truth, cursor["x"][i], cursor["y"][i], search=6)
            assert np.hypot(found[0] - cursor["x"][i], found[1] - cursor["y"][i]) <= 1.0, (
                entry["video_id"],
                i,
            )
            visible_errors.append(residual)
        # Where the truth says the pointer is hidden, the sprite matches nowhere nearly as well as when shown.
        for i in hidden[:: max(1, len(hidden) // 10)]:
            residual, _ = sprite_residual(
                frames[i],
                truth,
                truth["width"] // 2,
                truth["height"] // 2,
                search=max(truth["width"], truth["height"]),
            )
            assert residual > 4 * max(visible_errors), (entry["video_id"], i, residual, max(visible_errors))


def test_word_times_match_the_voiced_audio(corpus):
    layout, entries = corpus
    rate, hop = 16_000, 160  # 10 ms
    for entry in entries:
        truth = load_truth(layout.data_root / entry["truth"])
        audio = decode_audio(layout.data_root / entry["video"], rate)
        energy = np.sqrt(np.convolve(audio**2, np.ones(hop) / hop, mode="same"))[::hop]
        voiced = energy > 0.02 * np.percentile(energy, 99)  # the room noise sits far below this
        times = np.arange(len(voiced)) * hop / rate
        in_word = np.zeros(len(voiced), bool)
        near_word = np.zeros(len(voiced), bool)
        for word in truth["words"]:
            in_word |= (times >= word["start_s"]) & (times < word["end_s"])
            near_word |= (times >= word["start_s"] - 0.08) & (times < word["end_s"] + 0.08)
        assert voiced[in_word].mean() > 0.8, entry["video_id"]  # stop closures inside words are silent
        assert voiced[~near_word].mean() < 0.03, entry["video_id"]
        # Shifting the truth against the sound by more than a few tens of ms only makes the fit worse.
        fits = {lag: np.roll(voiced, -lag)[in_word].mean() for lag in range(-10, 11)}
        assert abs(max(fits, key=fits.get)) <= 3, fits
        # Each sentence's first word starts where the voice does.
        onsets = []
        firsts = {}
        for word in truth["words"]:
            firsts.setdefault((word["chunk_index"], word["sentence_index"]), word["start_s"])
        for start in firsts.values():
            window = (times >= start - 0.25) & (times < start + 0.25)
            first_voiced = times[window][voiced[window]]
            onsets.append(abs(first_voiced[0] - start) if len(first_voiced) else 1.0)
        assert np.median(onsets) < 0.05, (entry["video_id"], onsets)


def test_truth_is_consistent(corpus):
    layout, entries = corpus
    for entry in entries:
        truth = load_truth(layout.data_root / entry["truth"])
        chunks = truth["chunks"]
        assert chunks[0]["kind"] == "title" and any(c["is_medical"] for c in chunks)
        for before, after in zip(chunks, chunks[1:], strict=False):
            gap = after["start_s"] - before["end_s"]
            assert gap == pytest.approx(
                truth["crossfade_s"] if after["transition_in"] == "crossfade" else 0, abs=1e-3
            )
        assert truth["duration_s"] >= chunks[-1]["end_s"] - 1e-3
        for word in truth["words"]:
            chunk = chunks[word["chunk_index"]]
            assert chunk["start_s"] <= word["start_s"] < word["end_s"] <= chunk["end_s"]
        for chunk in chunks:  # every sentence has its role; a still case has a finding
            roles = [s["role"] for s in chunk["sentences"]]
            assert " ".join(s["text"] for s in chunk["sentences"]) == chunk["narration"]
            assert set(roles) <= set(SENTENCE_ROLES) and (chunk["kind"] != "image" or "finding" in roles)
        said_while_pointing = {(r["chunk_index"], r["sentence"]) for r in truth["rois"]}
        for index, sentence in said_while_pointing:
            assert {"text": sentence, "role": "roi_reference"} in chunks[index]["sentences"]
        cursor, fps = truth["cursor"], truth["fps"]
        for roi in truth["rois"]:
            chunk = chunks[roi["chunk_index"]]
            assert chunk["kind"] == "image" and roi["phrase"] in roi["sentence"]
            rect = chunk["image_rect"]
            x1, y1, x2, y2 = roi["box_px"]
            assert (
                rect["x"] <= x1 < x2 <= rect["x"] + rect["w"]
                and rect["y"] <= y1 < y2 <= rect["y"] + rect["h"]
            )
            assert chunk["start_s"] <= roi["start_s"] < roi["end_s"] <= chunk["end_s"]
            # While the phrase is said the pointer is inside the box, in every frame.
            for i in range(int(np.ceil(roi["start_s"] * fps)), int(roi["end_s"] * fps)):
                assert (
                    cursor["visible"][i]
                    and x1 - 1 <= cursor["x"][i] <= x2 + 1
                    and y1 - 1 <= cursor["y"][i] <= y2 + 1
                )


def changed_fraction(first: np.ndarray, second: np.ndarray, truth: dict, frames: tuple[int, int]) -> float:
    """Share of pixels that change by more than compression noise, leaving out overlays and the pointer."""
    keep = np.ones(first.shape[:2], bool)
    for overlay in truth["overlays"]:
        keep[overlay["y"] : overlay["y"] + overlay["h"], overlay["x"] : overlay["x"] + overlay["w"]] = False
    cursor = truth["cursor"]
    reach = max(cursor["sprite_wh"]) + 4
    for i in frames:
        if cursor["visible"][i]:
            x, y = round(cursor["x"][i]), round(cursor["y"][i])
            keep[max(y - reach, 0) : y + reach, max(x - reach, 0) : x + reach] = False
    changed = np.abs(first.astype(np.int16) - second.astype(np.int16)).max(axis=2) > 30
    return float((changed & keep).sum() / keep.sum())


def test_stable_chunks_hold_still_and_moving_ones_move(corpus):
    layout, entries = corpus
    kinds = set()
    for entry in entries:
        truth = load_truth(layout.data_root / entry["truth"])
        frames = decode_frames(layout.data_root / entry["video"])
        fps = truth["fps"]
        for chunk in truth["chunks"]:
            kinds.add(chunk["kind"])
            picks = np.linspace((chunk["start_s"] + 0.2) * fps, (chunk["end_s"] - 0.2) * fps, 6).astype(int)
            change = max(
                changed_fraction(frames[a], frames[b], truth, (a, b))
                for a, b in zip(picks, picks[1:], strict=False)
            )
            if chunk["stable"]:
                assert change < 0.002, (entry["video_id"], chunk["chunk_index"], chunk["kind"], change)
            else:
                assert change > 0.01, (entry["video_id"], chunk["chunk_index"], chunk["kind"], change)
    assert {"title", "image"} <= kinds and kinds & {"zoom", "pan", "presenter"}


def test_same_seed_same_lecture_and_another_seed_differs(tmp_path):
    def truth_for(seed: int, name: str) -> dict:
        layout = DataLayout(tmp_path / name, tmp_path / name / "db.duckdb")
        config = DemoCorpusConfig(
            seed=seed, channels=1, videos_per_channel=1, seconds=15, width=320, height=240, fps=10
        )
        entry = render_lecture(layout, config, config.channel_styles()[0], 0, 0)
        return json.loads((layout.data_root / entry["truth"]).read_text())

    first, again, other = truth_for(3, "a"), truth_for(3, "b"), truth_for(4, "c")
    assert first == again
    assert other["words"] != first["words"] or other["cursor"] != first["cursor"]


def test_generation_is_idempotent_and_leaves_other_videos_alone(tmp_path):
    from mednarratives_tests.conftest import make_video

    layout = DataLayout(tmp_path / "data", tmp_path / "data" / "db.duckdb")
    user_video = make_video(layout.channel_dir("my-channel") / "talk.mp4")
    config = DemoCorpusConfig(
        seed=1, channels=1, videos_per_channel=1, seconds=15, width=320, height=240, fps=10
    )
    [entry] = generate_corpus(layout, config, workers=1, log=lambda _: None)
    video = layout.data_root / entry["video"]
    stamp = video.stat().st_mtime_ns
    assert corpus_is_current(layout, config)
    generate_corpus(layout, config, workers=1, log=lambda _: None)
    assert video.stat().st_mtime_ns == stamp

    bigger = DemoCorpusConfig(**{**config.__dict__, "videos_per_channel": 2})
    assert not corpus_is_current(layout, bigger)
    assert len(generate_corpus(layout, bigger, workers=1, log=lambda _: None)) == 2
    assert user_video.is_file()
    assert not list(layout.videos_dir.rglob("*.temp.mp4"))

    # Another channel count: the earlier corpus's channel goes, the user's stays.
    other = DemoCorpusConfig(**{**config.__dict__, "channels": 2, "seed": 5})
    entries = generate_corpus(layout, other, workers=1, log=lambda _: None)
    on_disk = {str(p.relative_to(layout.data_root)) for p in layout.videos_dir.rglob("*.mp4")}
    assert on_disk == {e["video"] for e in entries} | {"videos/my-channel/talk.mp4"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"channels": 0}, "channels=0"),
        ({"seconds": 5}, "seconds=5"),
        ({"width": 641}, "size=641x720"),
        ({"fps": 500}, "fps=500"),
    ],
)
def test_bad_settings_are_named(changes, message):
    with pytest.raises(ValueError, match=message):
        DemoCorpusConfig(**changes)


def test_missing_images_folder_is_named(tmp_path):
    config = DemoCorpusConfig(images_dir=str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        generate_corpus(DataLayout(tmp_path, tmp_path / "db.duckdb"), config, workers=1, log=lambda _: None)


MEDPIX = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "medpix"


@pytest.mark.skipif(not (MEDPIX / "metadata.jsonl").is_file(), reason="../shared/datasets/medpix is not here")
def test_lectures_narrate_real_captions_from_an_images_folder(tmp_path):
    layout = DataLayout(tmp_path / "data", tmp_path / "data" / "db.duckdb")
    config = DemoCorpusConfig(
        seed=2,
        channels=1,
        videos_per_channel=1,
        seconds=30,
        width=640,
        height=360,
        fps=10,
        images_dir=str(MEDPIX),
    )
    [entry] = generate_corpus(layout, config, workers=1, log=lambda _: None)
    truth = load_truth(layout.data_root / entry["truth"])
    records = {json.loads(line)["image"]: json.loads(line) for line in (MEDPIX / "metadata.jsonl").open()}
    medical = [c for c in truth["chunks"] if c["image"]]
    assert medical
    for chunk in medical:
        record = records["images/" + Path(chunk["image"]["source"]).name]
        assert record["split"] == "train"  # the dev split stays held out
        assert chunk["image"]["caption"] == record["caption"].strip()
        assert chunk["image"]["modality"] in ("CT", "MRI")


def test_default_corpus(default_demo_corpus):
    """The corpus `mednarratives demo` makes: 3 channels of 2 lectures, about a minute each at 1280x720."""
    layout, entries = default_demo_corpus
    assert len(entries) == 6 and len({e["channel"] for e in entries}) == 3
    for entry in entries:
        truth = load_truth(layout.data_root / entry["truth"])
        assert (truth["width"], truth["height"], truth["fps"]) == (1280, 720, 30)
        assert 40 <= truth["duration_s"] <= 80
        with av.open(str(layout.data_root / entry["video"])) as container:
            video = container.streams.video[0]
            assert (
                video.codec_context.name == "h264" and container.streams.audio[0].codec_context.name == "aac"
            )
            assert video.frames == truth["n_frames"] and video.average_rate == Fraction(30)
    truths = [load_truth(layout.data_root / e["truth"]) for e in entries]
    assert {t["cursor"]["shape"] for t in truths} == {"arrow", "hand", "crosshair"}
    kinds = {c["kind"] for t in truths for c in t["chunks"]}
    assert kinds == {"title", "presenter", "bullets", "image", "zoom", "pan"}, kinds
    assert {c["transition_in"] for t in truths for c in t["chunks"]} == {"cut", "crossfade"}
