"""The style space of generated lectures, and the part of it reserved for measuring.

A lecture's style has five axes, each drawn on its own: the voice (engine voice, rate, pitch,
room noise, level), the pointer (cursor theme, shape, size, shadow, behaviour), the slides
(design, pictures per slide, where the text goes, annotations), the video (frame size, frame
rate, compression, transitions, webcam corner, presenter on camera) and the narration (how the
lecturer words a case around its findings, `synthetic/narration.py`).

Whole voices, whole cursor-theme families, whole slide designs and whole narrations are
RESERVED: no model is
trained on them and no threshold is chosen with them; lectures in reserved styles only measure
how the pipeline does on what it never saw (docs/generalization.md). Every other value is a
training style. The split is decided by name, here and nowhere else.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from mednarratives_assets.synthetic.narration import DEMO_NARRATION, NARRATIONS
from mednarratives_assets.synthetic.pointers import (
    CursorStyle,
    draw_theme,
    pointer_themes,
    theme_family,
    theme_shapes,
)
from mednarratives_assets.synthetic.slides import SLIDE_DESIGNS
from mednarratives_assets.synthetic.voices import VoiceStyle, available_voices

SPLITS = ("training", "reserved")
RESERVED_ACCENTS = frozenset({"en-029", "en-GB-scotland"})
RESERVED_VARIANTS = frozenset({"f2", "m3"})
RESERVED_CURSOR_FAMILIES = frozenset({"dmz", "glass", "chameleon"})
RESERVED_SLIDE_DESIGNS = frozenset({"carbon-framed", "ivory-banded"})
RESERVED_NARRATIONS = frozenset({"terse", "socratic"})

FRAME_SIZES = ((854, 480), (960, 540), (1280, 720), (1600, 900), (1920, 1080))
FRAME_RATES = (24, 25, 30, 50, 60)
CRF_RANGE = (18, 32)
POINTER_HEIGHT_1080P = (16, 96)  # a pointer's height at 1080p; scaled with the frame
WEBCAM_CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")
POINTER_BEHAVIOURS = ("steady", "blinks", "hides-when-idle")
TEXT_POSITIONS = ("beside", "below", "over", "none")


def _voice_parts(voice: str) -> tuple[str, str]:
    """(accent, variant) of an espeak voice name such as espeak:en-029+f2; ("", "") for others."""
    engine, _, rest = voice.partition(":")
    if engine != "espeak":
        return "", ""
    accent, _, variant = rest.partition("+")
    return accent, variant


def voice_split(voice: str) -> str:
    accent, variant = _voice_parts(voice)
    return "reserved" if accent in RESERVED_ACCENTS or variant in RESERVED_VARIANTS else "training"


def cursor_split(theme: str) -> str:
    return "reserved" if theme_family(theme) in RESERVED_CURSOR_FAMILIES else "training"


def design_split(design: str) -> str:
    return "reserved" if design in RESERVED_SLIDE_DESIGNS else "training"


def narration_split(narration: str) -> str:
    return "reserved" if narration in RESERVED_NARRATIONS else "training"


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown style split {split!r}: choose one of {SPLITS}")


def split_voices(split: str) -> list[str]:
    _check_split(split)
    return [v for v in available_voices() if voice_split(v) == split]


def split_cursor_themes(split: str) -> list[str]:
    """The split's cursor themes that are installed here (X11 themes need their Debian packages)."""
    _check_split(split)
    return [t for t in pointer_themes() if cursor_split(t) == split]


def split_designs(split: str) -> list[str]:
    _check_split(split)
    return [d for d in SLIDE_DESIGNS if design_split(d) == split]


def split_narrations(split: str) -> list[str]:
    _check_split(split)
    return [n for n in NARRATIONS if narration_split(n) == split]


@dataclass(frozen=True)
class PointerLook:
    cursor: CursorStyle  # its size is the height at 1080p
    behaviour: str = "steady"

    def at_height(self, frame_height: int) -> CursorStyle:
        size = max(12, min(96, round(self.cursor.size * frame_height / 1080)))
        return CursorStyle(self.cursor.shape, self.cursor.theme, size, self.cursor.shadow)


@dataclass(frozen=True)
class SlideLook:
    design: str
    two_picture_share: float = 0.0  # of medical slides that show a second picture beside the first
    text_position: str = "beside"
    annotated_share: float = 0.0  # of medical slides with arrows or letters drawn on the picture


@dataclass(frozen=True)
class VideoLook:
    size: tuple[int, int] = (1280, 720)
    fps: int = 30
    crf: int = 23
    crossfade_share: float = 0.4  # of transitions that fade rather than cut
    webcam_corner: str | None = None
    presenter_share: float = 0.5  # of lectures that open with the lecturer on camera


@dataclass(frozen=True)
class LectureStyle:
    voice: VoiceStyle
    pointer: PointerLook
    slides: SlideLook
    video: VideoLook
    narration: str = DEMO_NARRATION

    @property
    def split(self) -> str:
        """reserved when any of its voice, cursor theme, slide design or narration is reserved."""
        parts = (
            voice_split(self.voice.voice),
            cursor_split(self.pointer.cursor.theme),
            design_split(self.slides.design),
            narration_split(self.narration),
        )
        return "reserved" if "reserved" in parts else "training"

    def factors(self) -> dict[str, str]:
        """One label per factor, as benchmarks break their figures down."""
        accent, variant = _voice_parts(self.voice.voice)
        height = self.pointer.cursor.size
        return {
            "split": self.split,
            "voice": self.voice.voice,
            "accent": accent or self.voice.voice.partition(":")[0],
            "voice_variant": variant or "-",
            "speaking_rate": "slow"
            if self.voice.rate < 0.95
            else "fast"
            if self.voice.rate > 1.08
            else "even",
            "room_noise": "noisy" if self.voice.noise_db > -45 else "quiet",
            "cursor_theme": self.pointer.cursor.theme,
            "cursor_family": theme_family(self.pointer.cursor.theme),
            "cursor_shape": self.pointer.cursor.shape,
            "cursor_size": "small" if height < 32 else "large" if height > 56 else "medium",
            "pointer_behaviour": self.pointer.behaviour,
            "slide_design": self.slides.design,
            "slide_tone": SLIDE_DESIGNS[self.slides.design].tone,
            "text_position": self.slides.text_position,
            "frame_size": f"{self.video.size[1]}p",
            "fps": str(self.video.fps),
            "webcam": self.video.webcam_corner or "none",
            "narration": self.narration,
        }

    def describe(self) -> dict:
        """Everything about the style, JSON-ready, for a lecture's ground truth."""
        return {"factors": self.factors(), **asdict(self)}


def draw_style(rng: np.random.Generator, split: str) -> LectureStyle:
    """A lecture style from `split`: every axis drawn independently of the others."""
    voices, themes, designs = split_voices(split), split_cursor_themes(split), split_designs(split)
    for axis, values in (("voices", voices), ("cursor themes", themes), ("slide designs", designs)):
        if not values:
            raise RuntimeError(f"no {split} {axis} are installed here; see docs/generalization.md")
    voice = VoiceStyle(
        voice=str(rng.choice(voices)),
        rate=float(rng.uniform(0.85, 1.2)),
        pitch=float(rng.uniform(-3, 3)),
        noise_db=float(rng.uniform(-62, -38)),
        level_db=float(rng.uniform(-14, -1)),
    )
    theme = draw_theme(themes, rng)
    low, high = (math.log(v) for v in POINTER_HEIGHT_1080P)
    cursor = CursorStyle(
        shape=str(rng.choice(theme_shapes(theme))),
        theme=theme,
        size=round(math.exp(rng.uniform(low, high))),
        shadow=bool(rng.random() < 0.4),
    )
    pointer = PointerLook(cursor, str(rng.choice(POINTER_BEHAVIOURS, p=(0.6, 0.2, 0.2))))
    slides = SlideLook(
        design=str(rng.choice(designs)),
        two_picture_share=float(rng.choice([0.0, 0.3, 0.6])),
        text_position=str(rng.choice(TEXT_POSITIONS)),
        annotated_share=float(rng.choice([0.0, 0.4, 0.8])),
    )
    video = VideoLook(
        size=FRAME_SIZES[int(rng.integers(len(FRAME_SIZES)))],
        fps=int(rng.choice(FRAME_RATES)),
        crf=int(rng.integers(CRF_RANGE[0], CRF_RANGE[1] + 1)),
        crossfade_share=float(rng.uniform(0.0, 0.6)),
        webcam_corner=None if rng.random() < 0.3 else str(rng.choice(WEBCAM_CORNERS)),
        presenter_share=float(rng.choice([0.0, 0.5, 1.0])),
    )
    # drawn last, so that the other axes of a seed stay what they were before narration was an axis
    narration = str(rng.choice(split_narrations(split)))
    return LectureStyle(voice, pointer, slides, video, narration)
