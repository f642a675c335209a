"""One narrated lecture: its plan (slides, narration, pointer choreography) and its frames.

`plan_lecture` decides everything first, from a seeded generator: which slides, what is said and
when, where the pointer goes. `render_frames` then draws the frames from the plan, so the
ground truth is the plan itself rather than something measured afterwards.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from mednarratives_assets.demo.rois import PictureRoi, find_rois
from mednarratives_assets.spoken_text import speakable, strip_punctuation
from mednarratives_assets.synthetic.medical_images import MedicalImage
from mednarratives_assets.synthetic.narration import DEMO_NARRATION, NARRATIONS
from mednarratives_assets.synthetic.pointers import (
    CursorSprite,
    CursorStyle,
    CursorTrack,
    paste_sprite,
    render_sprite,
)
from mednarratives_assets.synthetic.slides import (
    SLIDE_DESIGNS,
    Rect,
    bullet_slide,
    designed_image_slide,
    title_slide,
)
from mednarratives_assets.synthetic.speech import SpokenWord
from mednarratives_assets.synthetic.styles import LectureStyle, PointerLook, SlideLook, VideoLook
from mednarratives_assets.synthetic.voices import VoiceStyle, narrator, room_audio

_LOG = logging.getLogger(__name__)
CROSSFADE_S = 0.5
ZOOM_FACTOR = 1.3
PAN_FRACTION = 0.05  # a pan slides the (slightly enlarged) slide by this much of the width each way
STABLE_KINDS = ("title", "bullets", "image")  # still apart from the pointer and overlays
MOVING_KINDS = ("zoom", "pan")  # medical slides in motion: not stable
_MODALITY_WORDS = {
    "CT": "CT scan",
    "MRI": "MRI",
    "X-ray": "radiograph",
    "ultrasound": "ultrasound",
    "histopathology": "histology slide",
    "ophthalmology": "fundus photograph",
}
PIPER_JOE = "piper:en_US-joe-medium"


@dataclass(frozen=True)
class ChannelStyle:
    name: str
    title: str
    look: LectureStyle  # every lecture's style, unless a corpus draws one per lecture
    focus: tuple[str, ...] = ()  # modalities this channel shows first


def _demo_look(design: str, cursor: CursorStyle, webcam: str | None) -> LectureStyle:
    """The demo's fixed looks: training styles, 720p at 30 fps, the piper voice in a quiet room."""
    return LectureStyle(
        voice=VoiceStyle(PIPER_JOE, noise_db=-51.0, level_db=-3.0),
        pointer=PointerLook(cursor),
        slides=SlideLook(design),
        video=VideoLook(webcam_corner=webcam),
    )


DEMO_CHANNELS = (
    ChannelStyle(
        "radiology-rounds",
        "Radiology Rounds",
        _demo_look("dark", CursorStyle("arrow", "light", 48), "bottom-right"),
        focus=("CT", "MRI", "X-ray"),
    ),
    ChannelStyle(
        "pathology-atlas",
        "The Pathology Atlas",
        _demo_look("light", CursorStyle("hand", "dark", 60), None),
        focus=("histopathology", "ophthalmology", "other"),
    ),
    ChannelStyle(
        "imaging-review",
        "Imaging Review",
        _demo_look("slate", CursorStyle("crosshair", "light", 45), "bottom-right"),
        focus=("ultrasound", "X-ray", "MRI"),
    ),
)


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" or word.startswith(("MRI", "X", "H ")) else "a"


@dataclass
class Sentence:
    text: str
    words: list[SpokenWord]  # times from the lecture's start
    roi: PictureRoi | None = None
    bullet: int | None = None
    role: str = "filler"  # one of evaluation.ground_truth.SENTENCE_ROLES


@dataclass
class Chunk:
    kind: str  # title, presenter, bullets, image (a still medical slide), or zoom / pan (a moving one)
    heading: str
    slide: np.ndarray
    start_s: float = 0.0
    end_s: float = 0.0
    transition_in: str = "cut"
    sentences: list[Sentence] = field(default_factory=list)
    image: MedicalImage | None = None
    image_rect: Rect | None = None  # around every picture on the slide: the region a pair should keep
    picture_rect: Rect | None = None  # the picture the narration's regions are on
    annotations: list[dict] = field(default_factory=list)
    bullet_anchors: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class LecturePlan:
    channel: str
    video_id: str
    seed: int
    look: LectureStyle
    chunks: list[Chunk]
    audio: np.ndarray
    sample_rate: int
    cursor_style: CursorStyle  # at the frame's scale
    sprite: CursorSprite
    track: CursorTrack
    rois: list[dict]
    webcam_rect: Rect | None

    @property
    def fps(self) -> int:
        return self.look.video.fps

    @property
    def size(self) -> tuple[int, int]:
        return self.look.video.size

    @property
    def n_frames(self) -> int:
        return len(self.track.x)

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.fps


def _webcam_rect(size: tuple[int, int], corner: str) -> Rect:
    w, h = round(size[0] * 0.2) // 2 * 2, round(size[0] * 0.2 * 9 / 16) // 2 * 2
    margin = round(size[1] * 0.03)
    x = margin if corner.endswith("left") else size[0] - w - margin
    y = margin if corner.startswith("top") else size[1] - h - margin - round(10 * size[1] / 720)
    return (x, y, w, h)


def _union(rects: list[Rect]) -> Rect:
    x0, y0 = min(r[0] for r in rects), min(r[1] for r in rects)
    x1, y1 = max(r[0] + r[2] for r in rects), max(r[1] + r[3] for r in rects)
    return (x0, y0, x1 - x0, y1 - y0)


def plan_lecture(
    channel: ChannelStyle,
    look: LectureStyle,
    video_id: str,
    images: list[MedicalImage],
    rng: np.random.Generator,
    seed: int,
    seconds: float = 60.0,
    motion: str = "zoom",
) -> LecturePlan:
    """Lay out a lecture of about `seconds` in `look`: a title slide, then medical slides with
    bullets in between.

    `images` are shown in the order given, repeating if the lecture needs more. The second case is
    shown in `motion` ("zoom" or "pan") rather than still.
    """
    if motion not in MOVING_KINDS:
        raise ValueError(f"unknown motion {motion!r}: choose one of {MOVING_KINDS}")
    if not images:
        raise ValueError("a lecture needs at least one medical image")
    size, design = look.video.size, SLIDE_DESIGNS[look.slides.design]
    voice = narrator(look.voice)
    webcam = _webcam_rect(size, look.video.webcam_corner) if look.video.webcam_corner else None
    cursor_style = look.pointer.at_height(size[1])
    chunks: list[Chunk] = []
    pieces: list[tuple[int, np.ndarray]] = []  # (sample offset, audio)
    sample_rate = voice.sample_rate
    clock = 0.0

    def speak(chunk: Chunk, texts: list[tuple[str, PictureRoi | None, int | None, str]]) -> None:
        nonlocal clock
        if chunks and rng.random() < look.video.crossfade_share:  # the fade sits between the two spans
            chunk.transition_in = "crossfade"
            clock += CROSSFADE_S
        chunk.start_s = clock
        clock += float(rng.uniform(0.5, 0.9))
        for text, roi, bullet, role in texts:
            utterance = voice.say(text)
            offset = round(clock * sample_rate)
            pieces.append((offset, utterance.audio))
            words = [
                SpokenWord(w.word, offset / sample_rate + w.start_s, offset / sample_rate + w.end_s)
                for w in utterance.words
            ]
            chunk.sentences.append(Sentence(text, words, roi, bullet, role))
            clock = (offset + len(utterance.audio)) / sample_rate + float(rng.uniform(0.25, 0.55))
        clock += float(rng.uniform(0.3, 0.7))
        chunk.end_s = clock
        chunks.append(chunk)

    title_chunk = Chunk("title", "", np.zeros(0))  # its slide names the cases, known only at the end
    speak(
        title_chunk,
        [
            (f"Welcome back to {channel.title}.", None, None, "filler"),
            ("Today we will review a few cases together.", None, None, "filler"),
        ],
    )
    loadable = _loadable_images(images)
    if rng.random() < look.video.presenter_share:  # the lecturer on camera, full frame, before the cases
        presenter = Chunk("presenter", "", np.zeros(0))
        speak(
            presenter,
            [
                ("Before we start, a quick word on how to read these images.", None, None, "filler"),
                ("Look at each one systematically, and compare with prior studies.", None, None, "filler"),
            ],
        )
    cases: list[MedicalImage] = []
    while not cases or clock < seconds - 10:
        if len(cases) >= 2 and len(cases) % 2 == 0 and chunks[-1].kind != "bullets":
            done = cases[-2:]
            bullets = [f"{m.modality}: {m.region}" for m in done] + ["Describe location, size and contrast"]
            slide, anchors = bullet_slide(size, design, "Key points", bullets)
            spoken = [
                f"First, the {done[0].modality} of the {done[0].region}.",
                f"Second, the {done[1].modality} of the {done[1].region}.",
                "And always describe the location, size and contrast of a finding.",
            ]
            speak(
                Chunk("bullets", "Key points", slide, bullet_anchors=anchors),
                [(speakable(s), None, i, "filler") for i, s in enumerate(spoken)],
            )
            continue
        case_index = len(cases)
        image, picture = next(loadable)
        cases.append(image)
        intro = case_intro(image, rng, look.narration)
        named = image.modality if image.modality != "other" else ""
        heading = f"{named[:1].upper()}{named[1:]} · {image.region}" if named else image.region.capitalize()
        moving = case_index == 1
        pictures = [picture]
        if not moving and rng.random() < look.slides.two_picture_share:  # a comparison beside the case
            pictures.append(next(loadable)[1])
        notes = [image.modality, image.region.capitalize()] if rng.random() < 0.6 else []
        annotated = not moving and rng.random() < look.slides.annotated_share
        drawn = designed_image_slide(
            size,
            design,
            heading,
            pictures,
            [] if moving else notes,
            "none" if moving or not notes else look.slides.text_position,
            int(rng.integers(1, 4)) if annotated else 0,
            rng,
            reserved=webcam,
        )
        chunk = Chunk(
            motion if moving else "image",
            heading,
            drawn.pixels,
            image=image,
            image_rect=_union(drawn.image_rects),
            picture_rect=drawn.image_rects[0],
            annotations=[a.describe() for a in drawn.annotations],
        )
        if moving:
            remark = (
                "Let me zoom in for a closer look." if motion == "zoom" else "Let me move across the image."
            )
            speak(chunk, [(speakable(intro), None, None, "filler"), (remark, None, None, "filler")])
            continue
        narrated = case_narration(image, picture, intro, rng, look.narration)
        texts = [(text, roi, None, role) for text, roi, role in narrated]
        speak(chunk, texts)

    topics = list(dict.fromkeys(c.modality for c in cases))
    title_chunk.heading = (
        f"{', '.join(topics[:-1])} and {topics[-1]} cases" if len(topics) > 1 else f"{topics[0]} cases"
    )
    title_chunk.slide = title_slide(size, design, title_chunk.heading, channel.title)

    fps = look.video.fps
    n_frames = math.ceil(clock * fps)
    speech = np.zeros(round(n_frames / fps * sample_rate), np.float32)
    for offset, piece in pieces:
        end = min(len(speech), offset + len(piece))
        speech[offset:end] += piece[: end - offset]
    audio = room_audio(speech, sample_rate, look.voice, rng)

    track = CursorTrack(n_frames, fps, size, rng)
    behaviour = look.pointer.behaviour
    blink_period_s = float(rng.uniform(0.3, 0.8)) if behaviour == "blinks" else None
    rois = _choreograph(track, chunks, rng, blink_period_s)
    track.hold_until(n_frames / fps)
    if behaviour == "hides-when-idle":  # the OS hides a pointer that has not moved for a while
        track.hide_when_idle(float(rng.uniform(1.0, 3.0)))
    return LecturePlan(
        channel.name,
        video_id,
        seed,
        look,
        chunks,
        audio,
        sample_rate,
        cursor_style,
        render_sprite(cursor_style),
        track,
        rois,
        webcam,
    )


def _loadable_images(images: list[MedicalImage]) -> Iterator[tuple[MedicalImage, np.ndarray]]:
    """The images with their pixels, round and round; one that cannot be read is skipped with a warning."""
    unreadable: set[str] = set()
    while len(unreadable) < len(images):
        for image in images:
            if image.image_id in unreadable:
                continue
            try:
                yield image, image.load()
            except (OSError, ValueError) as error:
                unreadable.add(image.image_id)
                _LOG.warning("skipping image %s (%s): cannot read it: %s", image.image_id, image.path, error)
    raise ValueError(f"none of the {len(images)} images could be read (first: {images[0].path})")


def case_intro(image: MedicalImage, rng: np.random.Generator, narration: str = DEMO_NARRATION) -> str:
    """The sentence that opens a case in `narration`'s words, e.g. "Here is an MRI of the head." """
    modality = _MODALITY_WORDS.get(image.modality, "image")
    template = str(rng.choice(NARRATIONS[narration].intros))
    return template.format(a=_article(modality), modality=modality, region=image.region)


def case_narration(
    image: MedicalImage,
    picture: np.ndarray,
    intro: str,
    rng: np.random.Generator,
    narration: str = DEMO_NARRATION,
) -> list[tuple[str, PictureRoi | None, str]]:
    """What the lecturer says over a case's image, sentence by sentence with its region and its role
    (ground_truth.SENTENCE_ROLES): the intro (filler), the caption's first sentences (finding), one
    sentence in `narration`'s words for each region pointed at (roi_reference), maybe a closing
    (filler)."""
    templates = NARRATIONS[narration]
    rois = [
        replace(roi, phrase=templates.region_phrase(roi.phrase))
        for roi in find_rois(picture, image.modality, int(rng.choice([1, 2, 2, 3])), rng)
    ]
    texts: list[tuple[str, PictureRoi | None, str]] = [
        (speakable(intro), None, "filler"),
        (_first_sentences(speakable(image.caption), max_words=22), None, "finding"),
    ]
    texts += [
        (str(rng.choice(templates.pointing)).format(phrase=r.phrase, position=r.position), r, "roi_reference")
        for r in rois
    ]
    if rng.random() < 0.4:
        texts.append((str(rng.choice(templates.closings)), None, "filler"))
    return texts


def phrase_index(sentence: str, phrase: str) -> int:
    """The index of the sentence's word where a region's noun phrase starts: where the pointer
    must have arrived."""
    phrase_words, tokens = phrase.split(), [strip_punctuation(t) for t in sentence.split()]
    return next(i for i in range(len(tokens)) if tokens[i : i + len(phrase_words)] == phrase_words)


def _first_sentences(text: str, max_words: int) -> str:
    """The caption's leading sentences, up to about `max_words`; the first one is always whole.
    A list's numbers ("1. Mild stranding ... 2. ...") are not sentences."""
    parts = (part.strip() for part in text.replace("? ", ". ").split(". "))
    sentences = [part for part in parts if part and not part.rstrip(".").isdigit()]
    kept = sentences[:1]
    for sentence in sentences[1:]:
        if len(" ".join(kept).split()) + len(sentence.split()) > max_words:
            break
        kept.append(sentence)
    return ". ".join(s.rstrip(".") for s in kept) + "."


def _rest_point(rect: Rect, boxes: list[tuple[float, ...]], rng: np.random.Generator) -> tuple[float, float]:
    """Somewhere on the image but clear of its ROIs, where the pointer waits before it points."""
    x, y, w, h = rect
    for _ in range(20):
        px, py = rng.uniform(0.15, 0.85), rng.uniform(0.15, 0.85)
        if not any(b[0] - 0.05 <= px <= b[2] + 0.05 and b[1] - 0.05 <= py <= b[3] + 0.05 for b in boxes):
            break
    return (x + px * w, y + py * h)


def _choreograph(
    track: CursorTrack, chunks: list[Chunk], rng: np.random.Generator, blink_period_s: float | None
) -> list[dict]:
    """Move the pointer through the lecture; returns the regions of interest it pointed at.

    With `blink_period_s`, a pointer parked after the last region blinks on and off.
    """
    rois: list[dict] = []
    for chunk_index, chunk in enumerate(chunks):
        first_word = chunk.sentences[0].words[0].start_s
        if chunk.kind not in ("bullets", "image") or (chunk.kind == "bullets" and rng.random() < 0.4):
            track.hold_until(chunk.start_s + 0.3, tremor_px=0.0)
            track.leave_frame()
            track.hide_until(chunk.end_s)
            continue
        if chunk.kind == "bullets":
            for sentence in chunk.sentences:
                ax, ay = chunk.bullet_anchors[sentence.bullet]
                track.move_to(
                    (ax - rng.uniform(12, 40), ay + rng.uniform(-6, 6)), arrive_by=sentence.words[0].start_s
                )
                track.hold_until(sentence.words[-1].end_s, tremor_px=float(rng.choice([0.0, 0.8])))
            continue
        x, y, w, h = chunk.picture_rect
        boxes = [r.roi.box for r in chunk.sentences if r.roi is not None]
        track.hold_until(max(track.t, chunk.start_s), tremor_px=0.0)
        track.move_to(
            _rest_point(chunk.picture_rect, boxes, rng), arrive_by=first_word + rng.uniform(0.2, 1.5)
        )
        for sentence in chunk.sentences:
            if sentence.roi is None:
                continue
            box_px = (
                x + sentence.roi.box[0] * w,
                y + sentence.roi.box[1] * h,
                x + sentence.roi.box[2] * w,
                y + sentence.roi.box[3] * h,
            )
            phrase_start = sentence.words[phrase_index(sentence.text, sentence.roi.phrase)].start_s
            inner = 0.25 * (box_px[2] - box_px[0]), 0.25 * (box_px[3] - box_px[1])
            target = (
                (box_px[0] + box_px[2]) / 2 + rng.uniform(-1, 1) * inner[0],
                (box_px[1] + box_px[3]) / 2 + rng.uniform(-1, 1) * inner[1],
            )
            arrived = track.move_to(target, arrive_by=phrase_start - rng.uniform(0.1, 0.5))
            pointing = str(rng.choice(["still", "tremor", "circle"]))
            end = sentence.words[-1].end_s
            track.dwell_until(end + rng.uniform(0.05, 0.3), box_px, pointing)
            if arrived >= end:  # the pointer came too late to point while the phrase was said
                continue
            rois.append(
                {
                    "roi_index": len(rois),
                    "chunk_index": chunk_index,
                    "phrase": sentence.roi.phrase,
                    "sentence": sentence.text,
                    "phrase_start_s": round(phrase_start, 3),
                    "start_s": round(max(phrase_start, arrived), 3),
                    "end_s": round(end, 3),
                    "box_px": [round(v, 1) for v in box_px],
                    "box_norm": [round(v, 4) for v in sentence.roi.box],
                    "pointing": pointing,
                }
            )
        ending = rng.random()
        if ending < 0.35:
            track.leave_frame()
            track.hide_until(chunk.end_s)
        elif ending < 0.7:
            margin_x = min(track.width - 30, x + w + rng.uniform(30, 120))
            track.move_to((margin_x, y + rng.uniform(0.2, 0.8) * h))
        if ending >= 0.35 and blink_period_s:
            track.blink_until(chunk.end_s, blink_period_s)
        elif ending >= 0.35:
            track.hold_until(chunk.end_s, tremor_px=0.0)
    return rois


def _presenter_painter(plan: LecturePlan):
    """The lecturer on camera, drawn into any rectangle: swaying a little, mouth moving with the narration."""
    hop = plan.sample_rate / plan.fps
    energy = np.array(
        [
            np.sqrt(np.mean(plan.audio[int(i * hop) : int((i + 1) * hop)] ** 2) + 1e-12)
            for i in range(plan.n_frames)
        ]
    )
    mouth = np.clip(energy / max(float(np.percentile(energy, 95)), 1e-6), 0, 1)
    backgrounds: dict[tuple[int, int], np.ndarray] = {}

    def paint(frame: np.ndarray, index: int, rect: Rect) -> None:
        x, y, w, h = rect
        if (w, h) not in backgrounds:
            wall = np.linspace([70, 80, 95], [120, 125, 135], h, dtype=np.float32)
            backgrounds[(w, h)] = np.repeat(wall[:, None, :], w, axis=1).astype(np.uint8)
        scene = backgrounds[(w, h)].copy()
        sway = 0.02 * w * math.sin(index / plan.fps * 1.3)
        cx, cy = int(w / 2 + sway), int(h * 0.42)
        shoulders = (int(w / 2 + sway / 2), h + int(0.08 * h))
        cv2.ellipse(scene, shoulders, (int(0.38 * w), int(0.42 * h)), 0, 180, 360, (40, 50, 80), -1)
        cv2.ellipse(scene, (cx, cy), (int(0.13 * w), int(0.22 * h)), 0, 0, 360, (180, 140, 115), -1)
        hair = (int(0.14 * w), int(0.09 * h))
        cv2.ellipse(scene, (cx, cy - int(0.17 * h)), hair, 0, 180, 360, (50, 35, 30), -1)
        opening = max(1, int(0.05 * h * mouth[min(index, len(mouth) - 1)]))
        cv2.ellipse(scene, (cx, cy + int(0.1 * h)), (int(0.04 * w), opening), 0, 0, 360, (90, 40, 40), -1)
        frame[y : y + h, x : x + w] = scene

    return paint


def render_frames(plan: LecturePlan) -> Iterator[np.ndarray]:
    """The lecture's RGB frames, in order."""
    chunk_at = (
        np.searchsorted([c.start_s for c in plan.chunks], np.arange(plan.n_frames) / plan.fps, side="right")
        - 1
    )
    presenter = _presenter_painter(plan)
    track = plan.track
    width, height = plan.size

    def still(chunk: Chunk, t: float) -> np.ndarray:
        """The chunk's picture at time t, before overlays and the pointer."""
        if chunk.kind == "presenter":
            frame = np.empty((height, width, 3), np.uint8)
            presenter(frame, round(t * plan.fps), (0, 0, width, height))
            return frame
        if chunk.kind not in MOVING_KINDS:
            return chunk.slide.copy()
        progress = min(max((t - chunk.start_s) / max(chunk.end_s - chunk.start_s, 1e-6), 0.0), 1.0)
        x, y, w, h = chunk.image_rect
        if chunk.kind == "zoom":  # towards the image's centre
            scale, shift_x = 1 + (ZOOM_FACTOR - 1) * progress, 0.0
            cx, cy = x + w / 2, y + h / 2
        else:  # enlarged a little so the slide always fills the frame, then slid sideways
            scale, shift_x = 1 + 2 * PAN_FRACTION, PAN_FRACTION * width * (1 - 2 * progress)
            cx, cy = width / 2, height / 2
        affine = np.array([[scale, 0, cx * (1 - scale) + shift_x], [0, scale, cy * (1 - scale)]], np.float32)
        return cv2.warpAffine(chunk.slide, affine, (width, height), flags=cv2.INTER_LINEAR)

    for index in range(plan.n_frames):
        t = index / plan.fps
        chunk_index = max(int(chunk_at[index]), 0)
        chunk = plan.chunks[chunk_index]
        upcoming = plan.chunks[chunk_index + 1] if chunk_index + 1 < len(plan.chunks) else None
        if upcoming is not None and upcoming.transition_in == "crossfade" and t >= chunk.end_s:
            mix = (t - chunk.end_s) / CROSSFADE_S
            frame = cv2.addWeighted(
                still(chunk, chunk.end_s), 1 - mix, still(upcoming, upcoming.start_s), mix, 0
            )
        else:
            frame = still(chunk, t)
        if plan.webcam_rect is not None and chunk.kind != "presenter":
            presenter(frame, index, plan.webcam_rect)
        if track.visible[index]:
            paste_sprite(frame, plan.sprite, float(track.x[index]), float(track.y[index]))
        yield frame
