"""Long lectures for memory and speed benchmarks: slides held for a while, speech looped with pauses.

Nothing here is ground truth: these lectures exist to be big (three hours, or 4K with a hundred
slides) at little cost to make. Each slide is rendered and converted to YUV once and then encoded
again and again with x264's ultrafast preset at a low frame rate; the audio is streamed from a few
spoken sentences, so neither the frames nor the track are ever held whole.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from mednarratives_assets.synthetic.medical_images import MedicalImage, packaged_images
from mednarratives_assets.synthetic.slides import THEMES, bullet_slide, image_slide, title_slide

_TOPICS = [
    ("Chest imaging", ["Consolidation versus atelectasis", "Pleural effusion signs", "Air bronchograms"]),
    ("Neuroradiology", ["FLAIR hyperintensity", "Diffusion restriction", "Mass effect and midline shift"]),
    ("Abdominal CT", ["Hypodense liver lesions", "Enhancement phases", "Free fluid in the pelvis"]),
    ("Ultrasound basics", ["Echogenicity", "Acoustic shadowing", "Doppler flow"]),
    ("Histopathology", ["Nuclear atypia", "Mitotic figures", "Immunohistochemistry stains"]),
]
_KINDS = ("image", "bullets", "image", "image", "title")  # three medical slides in five


@dataclass(frozen=True)
class LongLecture:
    path: Path
    duration_s: float
    size: tuple[int, int]
    fps: int
    n_slides: int  # slide periods in the video (a slide may come back)
    slide_s: float
    audio_s: float
    sample_rate: int


def benchmark_slide(
    size: tuple[int, int], index: int, images: Sequence[MedicalImage] | None = None
) -> np.ndarray:
    """Slide number `index` of a benchmark lecture, RGB at `size`: image slides (a packaged medical
    image, cropped differently each time), bullet slides and title slides, in a fixed rotation."""
    images = images if images is not None else packaged_images()
    rng = np.random.default_rng(index)
    theme = list(THEMES.values())[index % len(THEMES)]
    topic, bullets = _TOPICS[index % len(_TOPICS)]
    kind = _KINDS[index % len(_KINDS)]
    if kind == "title" or not images:
        return title_slide(size, theme, f"{topic}: part {index + 1}", "Benchmark lecture")
    if kind == "bullets":
        slide, _anchors = bullet_slide(size, theme, f"{topic} ({index + 1})", bullets)
        return slide
    picture = images[index % len(images)].load()
    h, w = picture.shape[:2]
    keep = rng.uniform(0.7, 1.0)
    ch, cw = max(16, round(h * keep)), max(16, round(w * keep))
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    picture = picture[y : y + ch, x : x + cw]
    notes = [bullets[index % len(bullets)], f"Case {index + 1}"] if index % 2 else []
    slide, _rect = image_slide(
        size, theme, f"{topic}: case {index + 1}", np.ascontiguousarray(picture), notes
    )
    return slide


def looped_speech(
    utterances: Sequence[np.ndarray], sample_rate: int, pause_s: tuple[float, float], seed: int = 0
) -> Iterator[np.ndarray]:
    """Endless speech: the utterances (float32 mono) in a shuffled order, each followed by a pause
    of a random length within `pause_s`."""
    if not utterances:
        raise ValueError("looped_speech needs at least one utterance")
    rng = np.random.default_rng(seed)
    while True:
        for k in rng.permutation(len(utterances)):
            yield np.asarray(utterances[k], np.float32)
            yield np.zeros(round(rng.uniform(*pause_s) * sample_rate), np.float32)


def write_long_lecture(
    path: Path,
    slide_for: Callable[[int], np.ndarray],
    slide_s: float,
    duration_s: float,
    speech: Iterator[np.ndarray],
    sample_rate: int,
    fps: int = 5,
    crf: int = 28,
) -> LongLecture:
    """An H.264 (x264 ultrafast, `fps` frames a second) + AAC mp4 of `duration_s` seconds.

    Slide k (`slide_for(k)`, RGB with even sides) is shown from k * slide_s for slide_s seconds,
    with hard cuts; `speech` gives the audio, piece by piece, at `sample_rate`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n_frames = round(duration_s * fps)
    n_slides = math.ceil(duration_s / slide_s)
    n_audio = round(duration_s * sample_rate)
    pending = np.zeros(0, np.float32)
    audio_done = 0
    size = None
    with av.open(str(path), mode="w", format="mp4") as container:
        audio = container.add_stream("aac", rate=sample_rate, layout="mono")
        video = None
        shown, frame = -1, None
        for i in range(n_frames):
            slide = min(int(i / fps / slide_s), n_slides - 1)
            if slide != shown:
                rgb = slide_for(slide)
                if video is None:
                    size = (rgb.shape[1], rgb.shape[0])
                    video = container.add_stream("libx264", rate=Fraction(fps))
                    video.width, video.height = size
                    video.pix_fmt = "yuv420p"
                    video.options = {"preset": "ultrafast", "crf": str(crf)}
                yuv = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YUV_I420)
                frame, shown = av.VideoFrame.from_ndarray(yuv, format="yuv420p"), slide
                del rgb, yuv
            frame.pts = i
            container.mux(video.encode(frame))
            # the audio up to one second past this frame, in AAC-sized blocks
            wanted = min(n_audio, round((i + 1) / fps * sample_rate) + sample_rate)
            while audio_done + pending.size < wanted:
                pending = np.concatenate([pending, next(speech)])
            pending, audio_done = _encode_audio(container, audio, pending, audio_done, wanted, sample_rate)
        if video is None:
            raise ValueError(f"{path}: no frames to encode")
        container.mux(video.encode())
        pending, audio_done = _encode_audio(container, audio, pending, audio_done, n_audio, sample_rate)
        container.mux(audio.encode())
    return LongLecture(
        path, n_frames / fps, size, fps, n_slides, slide_s, audio_done / sample_rate, sample_rate
    )


def _encode_audio(
    container, stream, pending: np.ndarray, done: int, until: int, sample_rate: int
) -> tuple[np.ndarray, int]:
    """Encode `pending` audio in 1024-sample frames up to track sample `until`; returns the rest."""
    block = 1024
    while done < until and pending.size:
        n = min(block, until - done, pending.size)  # PyAV regroups short frames to the codec's size
        samples = np.clip(pending[:n], -1.0, 1.0)[None, :]
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format="fltp", layout="mono")
        frame.sample_rate = sample_rate
        frame.pts = done
        container.mux(stream.encode(frame))
        pending, done = pending[n:], done + n
    return pending, done
