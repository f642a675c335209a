"""The demo corpus: narrated lecture videos with exact ground truth, generated offline from a seed.

    generate_corpus(layout, DemoCorpusConfig(seed=0))

writes `<data_root>/videos/<channel>/<video_id>.mp4` and `<data_root>/ground_truth/<channel>/<video_id>.json`
(format: docs/demo-corpus.md). A manifest, `ground_truth/demo-corpus.json`, records the settings
and files; generating again with the same settings leaves existing files alone.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from mednarratives_assets.demo.lecture import (
    CROSSFADE_S,
    DEMO_CHANNELS,
    MOVING_KINDS,
    STABLE_KINDS,
    ChannelStyle,
    LecturePlan,
    plan_lecture,
)
from mednarratives_assets.evaluation.ground_truth import TRUTH_FORMAT
from mednarratives_assets.file_hashing import sha256_of
from mednarratives_assets.mp4 import write_mp4
from mednarratives_assets.settings import DataLayout
from mednarratives_assets.synthetic.medical_images import MedicalImage, folder_images, packaged_images
from mednarratives_assets.synthetic.styles import SPLITS, LectureStyle, draw_style

MANIFEST_NAME = "demo-corpus.json"


@dataclasses.dataclass(frozen=True)
class DemoCorpusConfig:
    seed: int = 0
    channels: int = 3
    videos_per_channel: int = 2
    seconds: float = 60.0
    width: int = 1280
    height: int = 720
    fps: int = 30
    images_dir: str | None = None  # a folder with metadata.jsonl (such as MedPix); default: packaged images
    # "demo": each channel's fixed look at width x height and fps; "training" or "reserved": every
    # lecture draws its own style, frame size and rate included, from that part of the style space
    styles: str = "demo"

    def __post_init__(self):
        problems = []
        if not 1 <= self.channels <= 50:
            problems.append(f"channels={self.channels} (1..50)")
        if not 1 <= self.videos_per_channel <= 100:
            problems.append(f"videos_per_channel={self.videos_per_channel} (1..100)")
        if not 15 <= self.seconds <= 1800:
            problems.append(f"seconds={self.seconds} (15..1800)")
        if (
            self.width % 2
            or self.height % 2
            or not (320 <= self.width <= 3840 and 240 <= self.height <= 2160)
        ):
            problems.append(f"size={self.width}x{self.height} (even, 320x240..3840x2160)")
        if not 10 <= self.fps <= 60:
            problems.append(f"fps={self.fps} (10..60)")
        if self.styles not in ("demo", *SPLITS):
            problems.append(f"styles={self.styles!r} (demo, {', '.join(SPLITS)})")
        if problems:
            raise ValueError("invalid demo corpus settings: " + ", ".join(problems))

    def lecture_look(self, channel: ChannelStyle, channel_index: int, video_index: int) -> LectureStyle:
        """The channel's own look at the configured size and rate, or one drawn from the split."""
        if self.styles == "demo":
            video = dataclasses.replace(channel.look.video, size=(self.width, self.height), fps=self.fps)
            return dataclasses.replace(channel.look, video=video)
        return draw_style(np.random.default_rng([self.seed, channel_index, video_index, 19]), self.styles)

    def channel_styles(self) -> list[ChannelStyle]:
        styles = []
        for i in range(self.channels):
            base = DEMO_CHANNELS[i % len(DEMO_CHANNELS)]
            suffix = f"-{i // len(DEMO_CHANNELS) + 1}" if i >= len(DEMO_CHANNELS) else ""
            styles.append(dataclasses.replace(base, name=base.name + suffix))
        return styles

    def images(self) -> list[MedicalImage]:
        if self.images_dir is None:
            return packaged_images()
        folder = Path(self.images_dir)
        if not folder.is_dir():
            raise FileNotFoundError(f"--images {folder}: no such folder")
        return folder_images(folder)


def lecture_images(
    images: list[MedicalImage], style: ChannelStyle, seed: int, channel_index: int, video_index: int
) -> list[MedicalImage]:
    """The channel's images, its focus modalities first, each video starting further along the list."""
    order = np.random.default_rng([seed, channel_index]).permutation(len(images))
    pool = [images[i] for i in order if images[i].modality in style.focus]
    pool += [images[i] for i in order if images[i].modality not in style.focus]
    start = (video_index * 3) % len(pool)
    return pool[start:] + pool[:start]


def _rect_fields(rect: tuple[int, int, int, int]) -> dict[str, int]:
    return dict(zip(("x", "y", "w", "h"), map(int, rect), strict=True))


def truth_document(plan: LecturePlan, images_source: str) -> dict:
    """The ground truth of one lecture as a JSON-ready dict (see docs/demo-corpus.md)."""
    words, chunks = [], []
    for chunk_index, chunk in enumerate(plan.chunks):
        for sentence_index, sentence in enumerate(chunk.sentences):
            for word in sentence.words:
                words.append(
                    {
                        "word": word.word,
                        "start_s": round(word.start_s, 3),
                        "end_s": round(word.end_s, 3),
                        "chunk_index": chunk_index,
                        "sentence_index": sentence_index,
                    }
                )
        rect = chunk.image_rect
        chunks.append(
            {
                "chunk_index": chunk_index,
                "kind": chunk.kind,
                "start_s": round(chunk.start_s, 3),
                "end_s": round(chunk.end_s, 3),
                "transition_in": chunk.transition_in,
                "is_medical": chunk.image is not None,
                "stable": chunk.kind in STABLE_KINDS,
                "heading": chunk.heading,
                "narration": " ".join(s.text for s in chunk.sentences),
                "sentences": [{"text": s.text, "role": s.role} for s in chunk.sentences],
                "image_rect": None if rect is None else _rect_fields(rect),
                "picture_rect": None if chunk.picture_rect is None else _rect_fields(chunk.picture_rect),
                "annotations": chunk.annotations,
                "image": None
                if chunk.image is None
                else {
                    "image_id": chunk.image.image_id,
                    "source": chunk.image.source,
                    "modality": chunk.image.modality,
                    "region": chunk.image.region,
                    "caption": chunk.image.caption,
                },
            }
        )
    transitions = [
        {
            "kind": "crossfade",
            "start_s": round(chunks[i - 1]["end_s"], 3),
            "end_s": chunks[i]["start_s"],
            "from_chunk": i - 1,
            "to_chunk": i,
        }
        for i, c in enumerate(plan.chunks)
        if c.transition_in == "crossfade"
    ]
    track = plan.track
    overlays = []
    if plan.webcam_rect is not None:
        overlays.append({"kind": "webcam", **_rect_fields(plan.webcam_rect)})
    return {
        "format": TRUTH_FORMAT,
        "channel": plan.channel,
        "video_id": plan.video_id,
        "seed": plan.seed,
        "images": images_source,
        "width": plan.size[0],
        "height": plan.size[1],
        "fps": plan.fps,
        "n_frames": plan.n_frames,
        "duration_s": round(plan.duration_s, 3),
        "style": plan.look.describe(),
        "audio": {"sample_rate": plan.sample_rate, "voice": plan.look.voice.voice},
        "crossfade_s": CROSSFADE_S,
        "words": words,
        "chunks": chunks,
        "transitions": transitions,
        "overlays": overlays,
        "rois": plan.rois,
        "cursor": {
            "shape": plan.cursor_style.shape,
            "theme": plan.cursor_style.theme,
            "size_px": plan.cursor_style.size,
            "sprite_wh": [int(plan.sprite.rgba.shape[1]), int(plan.sprite.rgba.shape[0])],
            "hotspot_in_sprite": list(plan.sprite.hotspot),
            "shadow": plan.cursor_style.shadow,
            "x": [
                round(float(v), 2) if seen else None for v, seen in zip(track.x, track.visible, strict=True)
            ],
            "y": [
                round(float(v), 2) if seen else None for v, seen in zip(track.y, track.visible, strict=True)
            ],
            "visible": [bool(v) for v in track.visible],
        },
    }


def render_lecture(
    layout: DataLayout,
    config: DemoCorpusConfig,
    style: ChannelStyle,
    video_index: int,
    channel_index: int,
    images: list[MedicalImage] | None = None,
) -> dict:
    """Plan, render and encode one lecture; write its mp4 and truth JSON. Returns its manifest entry."""
    from mednarratives_assets.demo.lecture import render_frames

    started = time.perf_counter()
    images = images if images is not None else config.images()
    rng = np.random.default_rng([config.seed, channel_index, video_index])
    video_id = f"lecture-{video_index + 1:02d}"
    ordered = lecture_images(images, style, config.seed, channel_index, video_index)
    plan = plan_lecture(
        style,
        config.lecture_look(style, channel_index, video_index),
        video_id,
        ordered,
        rng,
        config.seed,
        config.seconds,
        motion=MOVING_KINDS[(channel_index + video_index) % len(MOVING_KINDS)],  # both kinds in every corpus
    )
    video_path = layout.channel_dir(style.name) / f"{video_id}.mp4"
    partial = video_path.with_name(f"{video_id}.temp.mp4")  # the sensor skips .temp files
    write_mp4(
        partial,
        render_frames(plan),
        fps=plan.fps,
        audio=plan.audio,
        sample_rate=plan.sample_rate,
        crf=plan.look.video.crf,
    )
    truth_path = layout.ground_truth_dir / style.name / f"{video_id}.json"
    truth_path.parent.mkdir(parents=True, exist_ok=True)
    truth_path.write_text(json.dumps(truth_document(plan, config.images_dir or "packaged")), encoding="utf-8")
    partial.replace(video_path)
    return {
        "channel": style.name,
        "video_id": video_id,
        "video": str(video_path.relative_to(layout.data_root)),
        "truth": str(truth_path.relative_to(layout.data_root)),
        "sha256": sha256_of(video_path),
        "duration_s": round(plan.duration_s, 3),
        "split": plan.look.split,
        "seconds_to_generate": round(time.perf_counter() - started, 2),
    }


def _manifest_path(layout: DataLayout) -> Path:
    return layout.ground_truth_dir / MANIFEST_NAME


def _read_manifest(layout: DataLayout) -> dict | None:
    """The current demo corpus's manifest, or None when there is none (or it is unreadable)."""
    try:
        return json.loads(_manifest_path(layout).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def corpus_is_current(layout: DataLayout, config: DemoCorpusConfig) -> bool:
    """True when the manifest matches these settings and every file it lists is still there."""
    manifest = _read_manifest(layout)
    return (
        manifest is not None
        and manifest.get("config") == dataclasses.asdict(config)
        and all(
            (layout.data_root / entry[key]).is_file()
            for entry in manifest.get("videos", [])
            for key in ("video", "truth")
        )
    )


def generate_corpus(
    layout: DataLayout,
    config: DemoCorpusConfig | None = None,
    workers: int = 2,
    log: Callable[[str], None] = print,
    force: bool = False,
) -> list[dict]:
    """Generate every lecture of the corpus (unless it is already current); returns the manifest's entries."""
    config = config or DemoCorpusConfig()
    if not force and corpus_is_current(layout, config):
        manifest = _read_manifest(layout)
        log(f"demo corpus already present ({len(manifest['videos'])} videos under {layout.videos_dir})")
        return manifest["videos"]
    images = config.images()
    previous = _withdraw_manifest(layout)
    jobs = [
        (style, v, c)
        for c, style in enumerate(config.channel_styles())
        for v in range(config.videos_per_channel)
    ]
    log(
        f"generating {len(jobs)} demo lectures ({config.channels} channels x {config.videos_per_channel}, "
        f"about {config.seconds:.0f} s each, "
        f"{f'{config.width}x{config.height}' if config.styles == 'demo' else config.styles + ' styles'}) "
        f"from {len(images)} images"
    )
    entries = []

    def record(entry: dict) -> None:
        entries.append(entry)
        log(
            f"  [{len(entries)}/{len(jobs)}] {entry['channel']}/{entry['video_id']}: "
            f"{entry['duration_s']:.1f} s of video in {entry['seconds_to_generate']:.1f} s"
        )

    if workers <= 1:
        for style, v, c in jobs:
            record(render_lecture(layout, config, style, v, c, images))
    else:
        context = multiprocessing.get_context("spawn")  # onnxruntime and x264 threads do not survive fork
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            for future in [
                pool.submit(render_lecture, layout, config, style, v, c, images) for style, v, c in jobs
            ]:
                record(future.result())
    kept = {entry[key] for entry in entries for key in ("video", "truth")}
    for entry in previous:  # files of the earlier corpus that this one did not replace
        for key in ("video", "truth"):
            if entry[key] not in kept:
                (layout.data_root / entry[key]).unlink(missing_ok=True)
    manifest = {"config": dataclasses.asdict(config), "videos": entries}
    _manifest_path(layout).parent.mkdir(parents=True, exist_ok=True)
    _manifest_path(layout).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return entries


def _withdraw_manifest(layout: DataLayout) -> list[dict]:
    """Remove the earlier corpus's manifest (so a run that fails midway is never taken as current) and
    return its entries. Their files stay until the new corpus is complete: only then are the ones it
    did not replace deleted, and only those the manifest lists, never a user's videos.
    """
    manifest = _read_manifest(layout)
    _manifest_path(layout).unlink(missing_ok=True)
    return manifest.get("videos", []) if manifest else []
