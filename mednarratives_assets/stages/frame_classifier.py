"""Does a lecture keyframe show a medical image? A small CNN, trained offline on generated frames.

Medical means CT, MRI, X-ray, ultrasound, histology, fundus photos and the like; not medical means
text slides, diagrams, charts, the presenter on camera, desktop screenshots and slides carrying
ordinary photos. The training frames come from `synthetic/classifier_frames.py`. Evaluation holds out
whole medical images, so the held-out accuracy measures recognising images never seen in training.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from mednarratives_assets.atomic_files import replaced_file, write_file
from mednarratives_assets.stage_settings import check_settings, setting
from mednarratives_assets.synthetic.classifier_frames import (
    FRAME_SIZE,
    NEGATIVE_KINDS,
    Box,
    negative_frame,
    positive_frame_with_boxes,
    shrink_picture,
)
from mednarratives_assets.synthetic.medical_images import MedicalImage, folder_images, packaged_images
from mednarratives_assets.synthetic.styles import split_designs

INPUT_SIZE = (128, 224)  # (h, w) the network sees: a 16:9 frame, small enough to train on CPUs
FILE_FORMAT = "mednarratives-frame-classifier/1"
CELL_GRID = (INPUT_SIZE[0] // 32, INPUT_SIZE[1] // 32)  # the network's final map, (4, 7)
_BATCH = 32
_LEARNING_RATE = 4e-3
_CELL_LOSS_WEIGHT = 1.0
_PHOTO_WEIGHT = 1.5  # photo slides count this much in the loss: the one negative that looks medical

_MEAN, _STD = 0.45, 0.25  # one normalization for all channels: grayscale stays grayscale


@dataclass(frozen=True)
class ClassifierTrainingSettings:
    frames_per_class: int = setting(
        600,
        "Generated training frames per class (medical, not medical); at least one per negative kind.",
        ge=len(NEGATIVE_KINDS),
    )
    epochs: int = setting(8, "Passes over the training frames.", ge=1)
    held_out_fraction: float = setting(
        0.25, "Share of the medical images (by image) and of the negatives' seeds held out.", gt=0, lt=1
    )
    seed: int = setting(0, "Seeds the held-out split, the generated frames and the initial weights.", ge=0)
    threads: int = setting(2, "CPU threads torch trains with.", ge=1)

    def validated(self) -> ClassifierTrainingSettings:
        """The settings themselves, or a ValueError naming each bad field and its value."""
        return check_settings(self, "{name} must {rule}, got {value!r}")


def training_images(extra_images_dir: Path | None) -> list[MedicalImage]:
    """The packaged images plus, when the folder exists, its dev split.

    Only the dev split: the demo lectures draw on the train split, so no lecture ever shows an
    image the classifier was trained on.
    """
    images = packaged_images()
    if extra_images_dir is not None and Path(extra_images_dir).is_dir():
        images += folder_images(Path(extra_images_dir), splits=("dev",))
    return images


# ---------------------------------------------------------------- the network


def _conv(c_in: int, c_out: int, kernel: int = 3, stride: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    ]


class _FrameNet(nn.Module):
    """Conv blocks from 128x224 down to 4x7, global average pool, one logit; small enough for two cores.

    A second head gives a logit per cell of the 4x7 map: does this cell lie on a medical image?
    It only serves training. Being told where the picture is teaches the network in a few epochs
    what the frame's label alone does not (held-out recall on unseen modalities rises most).
    """

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            *_conv(3, 24, kernel=5, stride=2),  # 64x112
            *_conv(24, 32, stride=2),  # 32x56
            *_conv(32, 64),
            nn.MaxPool2d(2),  # 16x28
            *_conv(64, 96),
            nn.MaxPool2d(2),  # 8x14
            *_conv(96, 128),
            nn.MaxPool2d(2),  # 4x7
            *_conv(128, 128),
        )
        self.dropout = nn.Dropout(0.2)
        self.head = nn.Linear(128, 1)
        self.cells = nn.Conv2d(128, 1, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The frames' logits (n,) and their cells' logits (n, 4, 7)."""
        features = self.features(x)
        frame = self.head(self.dropout(features.mean(dim=(2, 3)))).squeeze(1)
        return frame, self.cells(features).squeeze(1)


def _inputs(frames: list[np.ndarray]) -> np.ndarray:
    """Frames resized to the network's input, uint8 (n, h, w, 3)."""
    out = np.empty((len(frames), *INPUT_SIZE, 3), np.uint8)
    for i, frame in enumerate(frames):
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frame {i}: expected RGB uint8 (h, w, 3), got {frame.dtype} {frame.shape}")
        out[i] = cv2.resize(np.ascontiguousarray(frame), INPUT_SIZE[::-1], interpolation=cv2.INTER_AREA)
    return out


def _tensor(batch: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255)
    return (x - _MEAN) / _STD


class FrameClassifier:
    """The trained network, its training settings and metrics; scores frames as the probability of a
    medical image."""

    def __init__(self, net: _FrameNet, metrics: dict | None = None, settings: dict | None = None):
        self.net = net
        self.metrics = metrics or {}
        self.settings = settings or {}

    def medical_scores(self, frames: list[np.ndarray]) -> np.ndarray:
        """RGB uint8 frames of any size -> the probability that each shows a medical image, float32 (n,).

        Resized 64 at a time, so memory stays flat however many keyframes a channel has.
        """
        scores = [self._scores(_inputs(frames[start : start + 64])) for start in range(0, len(frames), 64)]
        return np.concatenate(scores) if scores else np.zeros(0, np.float32)

    def _scores(self, inputs: np.ndarray) -> np.ndarray:
        self.net.eval()
        scores = []
        with torch.no_grad():
            for start in range(0, len(inputs), 64):
                scores.append(torch.sigmoid(self.net(_tensor(inputs[start : start + 64]))[0]).numpy())
        return np.concatenate(scores).astype(np.float32) if scores else np.zeros(0, np.float32)

    def save(self, path: Path) -> None:
        """The weights with the input size they expect and their metrics; beside them a JSON with the
        training settings and metrics for people to read (loading needs only the weights file)."""
        path = Path(path)
        with replaced_file(path) as partial:  # a failed save keeps the model already there
            torch.save(
                {
                    "format": FILE_FORMAT,
                    "input_size": list(INPUT_SIZE),
                    "state_dict": self.net.state_dict(),
                    "metrics": self.metrics,
                    "settings": self.settings,
                },
                partial,
            )
        sidecar = {"format": FILE_FORMAT, "settings": self.settings, "metrics": self.metrics}
        write_file(path.with_suffix(".json"), json.dumps(sidecar, indent=2))

    @classmethod
    def load(cls, path: Path) -> FrameClassifier:
        """A classifier saved by save(); FileNotFoundError or ValueError naming the path otherwise."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: no frame classifier file (train one with train_frame_classifier)"
            )
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises many kinds for a file that is not a checkpoint
            raise ValueError(f"{path}: not a readable frame classifier file ({error})") from error
        if not isinstance(saved, dict) or saved.get("format") != FILE_FORMAT:
            raise ValueError(f"{path}: not a frame classifier file (expected format {FILE_FORMAT})")
        if tuple(saved.get("input_size", ())) != INPUT_SIZE:
            raise ValueError(
                f"{path}: made for input size {saved.get('input_size')}, this code uses {INPUT_SIZE}"
            )
        net = _FrameNet()
        try:
            net.load_state_dict(saved["state_dict"])
        except (KeyError, RuntimeError) as error:
            raise ValueError(
                f"{path}: weights do not fit the frame classifier's network ({error})"
            ) from error
        return cls(net.eval(), saved.get("metrics", {}), saved.get("settings", {}))


# ---------------------------------------------------------------- training


def usable_pictures(
    images: list[MedicalImage], log: Callable[[str], None]
) -> list[tuple[MedicalImage, np.ndarray]]:
    usable = []
    for image in images:
        try:
            usable.append((image, shrink_picture(image.load())))
        except Exception as error:  # a broken file, a missing package: skip the image, not the training
            log(f"skipping medical image {image.image_id} ({image.source}): {type(error).__name__}: {error}")
    return usable


def _split(images: list[MedicalImage], fraction: float, seed: int) -> set[str]:
    """The held-out image ids: a seeded permutation of the sorted ids, at least one each side.

    An image is held out only while its modality keeps another image in training: a modality seen
    only at test time cannot be learned, and the returned classifier would never have seen it. Only
    when that leaves too few are the rest taken from the permutation regardless. When a folder
    (MedPix) supplies most of the images, the held-out ones come from it alone.
    """
    ordered = sorted(images, key=lambda image: image.image_id)
    n_held = min(len(ordered) - 1, max(1, round(fraction * len(ordered))))
    packaged = {image.image_id for image in packaged_images()}
    from_folder = [image for image in ordered if image.image_id not in packaged]
    if len(from_folder) >= len(ordered) / 2:  # a folder such as MedPix supplies most images:
        ordered = from_folder  # hold out only its images, so every scarce packaged kind trains
    permuted = [ordered[i] for i in np.random.default_rng([seed, 4]).permutation(len(ordered))]
    in_training = Counter(image.modality for image in ordered)
    held: list[str] = []
    for image in permuted:
        if len(held) < n_held and in_training[image.modality] > 1:
            held.append(image.image_id)
            in_training[image.modality] -= 1
    held += [image.image_id for image in permuted if image.image_id not in held][: n_held - len(held)]
    return set(held)


def pictures_by_modality(
    pictures: list[tuple[MedicalImage, np.ndarray]], seed: int
) -> Callable[[int], np.ndarray]:
    """Picture j of a round robin over modalities, so a hundred CTs do not drown the one fundus photo."""
    rng = np.random.default_rng([seed, 5])
    groups: dict[str, list[np.ndarray]] = {}
    for image, picture in pictures:
        groups.setdefault(image.modality, []).append(picture)
    ordered = [groups[m] for m in sorted(groups)]
    for group in ordered:
        rng.shuffle(group)

    def picture(j: int) -> np.ndarray:
        group = ordered[j % len(ordered)]
        return group[(j // len(ordered)) % len(group)]

    return picture


def _source_name(source: str) -> str:
    """Where an image comes from, in one word: the package or the folder."""
    return re.split(r"[:/]", source, maxsplit=1)[0].strip()


@dataclass(frozen=True)
class _FrameSet:
    inputs: np.ndarray  # uint8 (n, h, w, 3) at INPUT_SIZE
    labels: np.ndarray  # float32 (n,): 1 for a medical image
    cells: np.ndarray  # float32 (n, 4, 7): the share of each final-map cell on a medical picture
    kinds: np.ndarray  # (n,) "medical" or the negative kind

    def fingerprint(self) -> str:
        """sha256 over the frames and their targets: the same settings and images give the same value."""
        digest = hashlib.sha256()
        for array in (self.inputs, self.labels, self.cells):
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()


def _coverage(boxes: list[Box], size: tuple[int, int]) -> np.ndarray:
    mask = np.zeros((size[1], size[0]), np.float32)
    for x0, y0, x1, y1 in boxes:
        mask[max(0, y0) : y1, max(0, x0) : x1] = 1
    return cv2.resize(mask, CELL_GRID[::-1], interpolation=cv2.INTER_AREA)


def _frame_set(
    picture_for: Callable[[int], np.ndarray],
    n: int,
    seed: int,
    positive_stream: int,
    negative_stream: int,
    designs: Sequence[str],
) -> _FrameSet:
    """n positives and n negatives (kinds in turn), frame j drawn from the rng (seed, stream, j);
    part of the slides in the given slide designs."""
    inputs = np.empty((2 * n, *INPUT_SIZE, 3), np.uint8)
    cells = np.zeros((2 * n, *CELL_GRID), np.float32)
    kinds = np.array(["medical"] * n + [NEGATIVE_KINDS[j % len(NEGATIVE_KINDS)] for j in range(n)])
    for j in range(n):
        frame, boxes = positive_frame_with_boxes(
            picture_for(j), np.random.default_rng([seed, positive_stream, j]), FRAME_SIZE, designs=designs
        )
        inputs[j], cells[j] = _inputs([frame])[0], _coverage(boxes, FRAME_SIZE)
        rng = np.random.default_rng([seed, negative_stream, j])
        inputs[n + j] = _inputs([negative_frame(str(kinds[n + j]), rng, FRAME_SIZE, designs=designs)])[0]
    labels = np.concatenate([np.ones(n, np.float32), np.zeros(n, np.float32)])
    return _FrameSet(inputs, labels, cells, kinds)


def _training_frames(
    train_pictures: list[tuple[MedicalImage, np.ndarray]], settings: ClassifierTrainingSettings
) -> _FrameSet:
    pictures = pictures_by_modality(train_pictures, settings.seed)
    return _frame_set(pictures, settings.frames_per_class, settings.seed, 1, 0, split_designs("training"))


def _training_pictures(
    usable: list[tuple[MedicalImage, np.ndarray]], settings: ClassifierTrainingSettings
) -> tuple[list[tuple[MedicalImage, np.ndarray]], set[str]]:
    """The pictures to train on, and the ids of the images held out."""
    held_ids = _split([image for image, _ in usable], settings.held_out_fraction, settings.seed)
    return [(image, picture) for image, picture in usable if image.image_id not in held_ids], held_ids


def training_data_fingerprint(images: list[MedicalImage], settings: ClassifierTrainingSettings) -> str:
    """The sha256 of the frames `train_frame_classifier(images, settings)` trains on, made again."""
    train_pictures, _ = _training_pictures(usable_pictures(images, lambda _: None), settings)
    return _training_frames(train_pictures, settings).fingerprint()


def train_frame_classifier(
    images: list[MedicalImage], settings: ClassifierTrainingSettings, log: Callable[[str], None] = print
) -> FrameClassifier:
    """Train on generated frames; measure on frames of medical images held out whole and of unseen seeds.

    Images are split by image_id (deterministic, settings.held_out_fraction held out, at least one on
    each side). Training frames are balanced: half carry training images (a round robin over
    modalities), half are negatives spread evenly over NEGATIVE_KINDS; their designed slides use
    training slide designs only. Held-out frames carry only held-out images, and their negatives
    come from another rng stream; they are drawn twice, in training and in reserved slide designs.
    Adam with BCE on the CPU, deterministic given the seed and thread count.
    """
    settings = settings.validated()
    started = time.perf_counter()
    usable = usable_pictures(images, log)
    if len(usable) < 2:
        raise ValueError(f"need at least 2 usable medical images to train and hold out, got {len(usable)}")
    train_pictures, held_ids = _training_pictures(usable, settings)
    held_pictures = [picture for image, picture in usable if image.image_id in held_ids]
    n_train = settings.frames_per_class
    fraction = settings.held_out_fraction
    n_held = max(len(NEGATIVE_KINDS), round(n_train * fraction / (1 - fraction)))
    log(
        f"frame classifier: {len(train_pictures)} training and {len(held_ids)} held-out medical images; "
        f"generating {2 * n_train} training and {2 * n_held} held-out frames"
    )
    seed = settings.seed
    training_designs = split_designs("training")
    train = _training_frames(train_pictures, settings)
    held = _frame_set(lambda j: held_pictures[j % len(held_pictures)], n_held, seed, 2, 3, training_designs)
    held_reserved = _frame_set(
        lambda j: held_pictures[j % len(held_pictures)], n_held, seed, 2, 3, split_designs("reserved")
    )
    generate_seconds = time.perf_counter() - started
    log(f"generated the frames in {generate_seconds:.1f} s")

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            classifier = FrameClassifier(_fit_net(train, settings, log), settings=asdict(settings))
    finally:
        torch.set_num_threads(previous_threads)
    train_seconds = time.perf_counter() - started - generate_seconds

    sources = Counter(_source_name(image.source) for image, _ in usable)
    reserved = _held_out_metrics(classifier, held_reserved)
    classifier.metrics = _held_out_metrics(classifier, held) | {
        "held_out_accuracy_reserved_designs": reserved["held_out_accuracy"],
        "held_out_recall_reserved_designs": reserved["held_out_recall"],
        "training_data_sha256": train.fingerprint(),
        "n_train_frames": len(train.labels),
        "n_held_out_frames": len(held.labels),
        "n_train_images": len(train_pictures),
        "n_held_out_images": len(held_ids),
        "held_out_image_ids": sorted(held_ids),
        "epochs": settings.epochs,
        "generate_seconds": round(generate_seconds, 2),
        "train_seconds": round(train_seconds, 2),
        "image_sources": dict(sorted(sources.items())),
    }
    metrics = classifier.metrics
    log(
        f"held-out accuracy {metrics['held_out_accuracy']:.3f} "
        f"(precision {metrics['held_out_precision']:.3f}, recall {metrics['held_out_recall']:.3f}; "
        f"in reserved slide designs {reserved['held_out_accuracy']:.3f}, "
        f"recall {reserved['held_out_recall']:.3f}); "
        + ", ".join(f"{kind} {value:.2f}" for kind, value in metrics["held_out_accuracy_by_kind"].items())
    )
    return classifier


def _held_out_metrics(classifier: FrameClassifier, held: _FrameSet) -> dict:
    predicted = classifier._scores(held.inputs) >= 0.5
    truth = held.labels == 1
    correct = predicted == truth
    true_positives = int((predicted & truth).sum())
    return {
        "held_out_accuracy": float(correct.mean()),
        "held_out_precision": true_positives / max(1, int(predicted.sum())),
        "held_out_recall": true_positives / max(1, int(truth.sum())),
        "held_out_accuracy_by_kind": {
            kind: float(correct[held.kinds == kind].mean()) for kind in ("medical", *NEGATIVE_KINDS)
        },
    }


def _fit_net(train: _FrameSet, settings: ClassifierTrainingSettings, log: Callable[[str], None]) -> _FrameNet:
    """Adam with a one-cycle learning rate on the frames' BCE plus the cells' BCE.

    Photo slides weigh _PHOTO_WEIGHT in the frame loss; frames are flipped left-right at random.
    """
    net = _FrameNet()
    n = len(train.labels)
    labels, cells = torch.from_numpy(train.labels), torch.from_numpy(train.cells)
    weights = torch.from_numpy(np.where(train.kinds == "photo_slide", _PHOTO_WEIGHT, 1.0).astype(np.float32))
    weights /= weights.mean()
    optimizer = torch.optim.Adam(net.parameters(), lr=_LEARNING_RATE, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=_LEARNING_RATE, total_steps=settings.epochs * -(-n // _BATCH), pct_start=0.25
    )
    generator = torch.Generator().manual_seed(settings.seed)
    started = time.perf_counter()
    for epoch in range(1, settings.epochs + 1):
        net.train()
        order = torch.randperm(n, generator=generator)
        flips = torch.rand(n, generator=generator) < 0.5
        total_loss, n_correct = 0.0, 0
        for start in range(0, n, _BATCH):
            index = order[start : start + _BATCH]
            batch, cell_targets, flip = _tensor(train.inputs[index.numpy()]), cells[index], flips[index]
            batch[flip], cell_targets[flip] = batch[flip].flip(3), cell_targets[flip].flip(2)
            frame_logits, cell_logits = net(batch)
            loss = nn.functional.binary_cross_entropy_with_logits(
                frame_logits, labels[index], weight=weights[index]
            ) + _CELL_LOSS_WEIGHT * nn.functional.binary_cross_entropy_with_logits(cell_logits, cell_targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total_loss += loss.item() * len(index)
            n_correct += int(((frame_logits > 0) == (labels[index] > 0.5)).sum())
        log(
            f"epoch {epoch}/{settings.epochs}: loss {total_loss / n:.4f}, "
            f"train accuracy {n_correct / n:.3f}, {time.perf_counter() - started:.0f} s"
        )
    return net.eval()
