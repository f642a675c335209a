"""The cursor detector: an ultralytics YOLO pose model with one keypoint, the pointer's hotspot.

It is built from a model yaml (no pretrained weights) and trained on generated crops
(synthetic/cursor_crops.py) of pointers in the training cursor themes, each labelled with its
sprite's own hotspot, fully offline. It works on CROP_PX crops at 720p scale, so an 11 to 64 px
pointer (16 to 96 px at 1080p) keeps its pixels: the traces stage hands it crops around
frame-difference candidates and tiles of the chunk's background, never whole frames.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from mednarratives_assets.atomic_files import replaced_file, write_file
from mednarratives_assets.contact_sheets import contact_sheet_png
from mednarratives_assets.file_hashing import sha256_of
from mednarratives_assets.stage_settings import check_settings, setting
from mednarratives_assets.synthetic.cursor_crops import CROP_PX, CursorCrop, cursor_crops
from mednarratives_assets.synthetic.styles import split_cursor_themes, split_designs

FILE_FORMAT = "mednarratives-cursor-detector/1"
# OKS sigma of the hotspot, for the loss and for matching predictions to pointers in training.
# Ultralytics' default for one keypoint is 1: a loss too flat to put the hotspot within pixels.
# At 0.05 early predictions, still tens of pixels off, match nothing and recall stalls.
HOTSPOT_OKS_SIGMA = 0.25
ULTRALYTICS_CONFIG_DIR = Path.home() / ".cache" / "mednarratives" / "ultralytics"
_ULTRALYTICS_SETTINGS_OFF = (
    "sync",
    "clearml",
    "comet",
    "dvc",
    "mlflow",
    "raytune",
    "tensorboard",
    "wandb",
    "vscode_msg",
    "openvino_msg",
)


@dataclass(frozen=True)
class DetectorTrainingSettings:
    """How much to train; the defaults (the shipped model's) take about 20 minutes on 2 cores."""

    train_crops: int = setting(3000, "Generated crops to train on.", ge=16)
    val_crops: int = setting(600, "Generated crops to validate on.", ge=8)
    epochs: int = setting(20, "Passes over the training crops.", ge=1)
    batch: int = setting(
        16, "Crops per step; on CPUs a crop costs the same in any batch, so smaller means more steps.", ge=2
    )
    model_yaml: str = setting(
        "yolo11n-pose.yaml", "The ultralytics YOLO pose model yaml to build the net from."
    )
    min_confidence: float = setting(0.5, "A detection below this confidence is no pointer.", gt=0, lt=1)
    seed: int = setting(0, "Seeds the generated crops and the training.")
    threads: int = setting(2, "CPU threads torch trains with.", ge=1)

    def validated(self) -> DetectorTrainingSettings:
        check_settings(self, "{name} must {rule}, got {value!r}")
        if not (self.model_yaml.endswith((".yaml", ".yml")) and "pose" in Path(self.model_yaml).name):
            raise ValueError(f"model_yaml must name a YOLO pose model yaml, got {self.model_yaml!r}")
        return self


def use_ultralytics_offline() -> None:
    """Keep ultralytics off the network: no DNS probes, no font download, no telemetry or loggers.

    Must run before ultralytics is first imported, since it reads YOLO_CONFIG_DIR at import; a
    YOLO_CONFIG_DIR set beforehand is kept. The font is matplotlib's DejaVu Sans under the name
    ultralytics asks for. PIL's own Image.open is put back.
    """
    os.environ["YOLO_OFFLINE"] = "1"
    # No progress bars (terminal escape codes in the CLI and the run logs): training reports each
    # epoch through `log` instead.
    os.environ.setdefault("YOLO_VERBOSE", "False")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(ULTRALYTICS_CONFIG_DIR))
    font = Path(os.environ["YOLO_CONFIG_DIR"]) / "Ultralytics" / "Arial.ttf"
    if not font.exists():
        import matplotlib

        font.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf", font)
    from PIL import Image
    from ultralytics import settings
    from ultralytics.utils import patches

    # runs_dir: where ultralytics writes when not told, instead of a `runs/` in the working directory
    settings.update(
        {name: False for name in _ULTRALYTICS_SETTINGS_OFF} | {"runs_dir": str(font.parent / "runs")}
    )
    # Importing ultralytics replaces PIL.Image.open for the whole process with a version that, on
    # an unreadable image, tries to pip-install a HEIF plugin and then fails with ImportError.
    Image.open = patches._image_open


@dataclass(frozen=True)
class Detection:
    x: float  # hotspot, in the crop's pixels
    y: float
    confidence: float
    box: tuple[
        float, float, float, float
    ]  # the pointer's visible extent x1, y1, x2, y2, in the crop's pixels


class CursorDetector:
    """A trained model; `locate` finds the best pointer in each crop."""

    def __init__(self, weights: Path, metrics: dict, min_confidence: float):
        use_ultralytics_offline()
        import torch
        from ultralytics import YOLO

        self.weights = Path(weights)
        # The network itself: crops are already CROP_PX squares, and only the best anchor of each
        # matters, so ultralytics' predictor (letterbox, NMS, result objects) would only add time.
        # Channels-last (the crops' own pixel order) runs its convolutions about 1.5x as fast on CPUs.
        net = YOLO(str(weights), task="pose").model.float().fuse(verbose=False).eval()
        self.device = "cuda" if torch.cuda.is_available() else "cpu"  # a GPU where there is one
        self.net = net.to(self.device, memory_format=torch.channels_last)
        self.metrics = metrics
        self.min_confidence = min_confidence

    @classmethod
    def load(cls, path: Path) -> CursorDetector:
        path = Path(path)
        sidecar = path.with_suffix(".json")
        if not path.is_file() or not sidecar.is_file():
            raise FileNotFoundError(f"no cursor detector at {path} (and its {sidecar.name})")
        try:
            info = json.loads(sidecar.read_text(encoding="utf-8"))
            if info.get("format") != FILE_FORMAT:
                raise ValueError(f"format {info.get('format')!r}, expected {FILE_FORMAT!r}")
            return cls(path, info["metrics"], float(info["settings"]["min_confidence"]))
        except Exception as exc:
            raise ValueError(f"cursor detector {path} cannot be loaded: {type(exc).__name__}: {exc}") from exc

    def locate(
        self, crops_bgr: list[np.ndarray], min_confidence: float | None = None, batch: int = 64
    ) -> list[Detection | None]:
        """The most confident pointer in each CROP_PX crop (BGR), else None.

        A detection needs `min_confidence`, by default the one the detector was saved with.
        """
        import torch

        threshold = self.min_confidence if min_confidence is None else min_confidence
        found: list[Detection | None] = []
        for start in range(0, len(crops_bgr), batch):
            rgb = np.stack(crops_bgr[start : start + batch])[..., ::-1]
            if rgb.shape[1:3] != (CROP_PX, CROP_PX):
                raise ValueError(f"cursor detector: crops must be {CROP_PX}x{CROP_PX}, got {rgb.shape[1:3]}")
            # (batch, channel, y, x) viewed on the pixels as they lie: channels-last, as the net is
            pixels = torch.from_numpy(np.ascontiguousarray(rgb)).permute(0, 3, 1, 2).to(self.device)
            with torch.inference_mode():
                # (batch, 4 + 1 + 3, anchors): box xywh, pointer score, hotspot x, y and visibility
                out = self.net(pixels.float().div_(255))[0].cpu()
            scores, anchors = out[:, 4].max(dim=1)
            for row, (score, anchor) in enumerate(zip(scores.tolist(), anchors.tolist(), strict=True)):
                if score < threshold:
                    found.append(None)
                    continue
                cx, cy, w, h = out[row, 0:4, anchor].tolist()
                hotspot = out[row, 5:7, anchor].tolist()
                found.append(
                    Detection(hotspot[0], hotspot[1], score, (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
                )
        return found

    def save(self, path: Path, settings: DetectorTrainingSettings) -> None:
        """Copy the weights to `path` and write the sidecar; a failure keeps what was stored."""
        with replaced_file(path) as partial:
            shutil.copyfile(self.weights, partial)
        sidecar = {"format": FILE_FORMAT, "settings": asdict(settings), "metrics": self.metrics}
        write_file(path.with_suffix(".json"), json.dumps(sidecar, indent=2))


def _write_split(root: Path, split: str, crops: list[CursorCrop]) -> None:
    images, labels = root / "images" / split, root / "labels" / split
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    for i, crop in enumerate(crops):
        cv2.imwrite(str(images / f"{i:06d}.png"), cv2.cvtColor(crop.image, cv2.COLOR_RGB2BGR))
        line = ""
        if crop.box is not None and crop.hotspot is not None:
            x0, y0, x1, y1 = (v / CROP_PX for v in crop.box)
            hx, hy = (v / CROP_PX for v in crop.hotspot)
            line = (
                f"0 {(x0 + x1) / 2:.6f} {(y0 + y1) / 2:.6f} {x1 - x0:.6f} {y1 - y0:.6f} {hx:.6f} {hy:.6f} 2\n"
            )
        (labels / f"{i:06d}.txt").write_text(line)


def write_dataset(
    root: Path, settings: DetectorTrainingSettings, picture_for: Callable[[int], np.ndarray]
) -> tuple[Path, list[CursorCrop]]:
    """A YOLO pose dataset under `root` (train and a held-out val split from other seeds) and its yaml.

    Every pointer is drawn in a training cursor theme, on slides partly in training slide designs:
    reserved themes and designs only ever measure.
    """
    shutil.rmtree(root, ignore_errors=True)
    styles = {"themes": split_cursor_themes("training"), "designs": split_designs("training")}
    train = list(cursor_crops(settings.train_crops, settings.seed * 2, picture_for, **styles))
    held_out = list(cursor_crops(settings.val_crops, settings.seed * 2 + 1, picture_for, **styles))
    _write_split(root, "train", train)
    _write_split(root, "val", held_out)
    data = root / "data.yaml"
    data.write_text(
        f"path: {root}\ntrain: images/train\nval: images/val\n"
        "kpt_shape: [1, 3]\nflip_idx: [0]\nnames:\n  0: cursor\n"
        f"kpt_oks_sigmas: [{HOTSPOT_OKS_SIGMA}]\n",
        encoding="utf-8",
    )
    return data, held_out


def training_data_fingerprint(dataset: Path) -> str:
    """sha256 over the training split's crops and labels as written: the same settings and pictures
    give the same value, so a saved detector says what it learned from."""
    digest = hashlib.sha256()
    for folder in ("images/train", "labels/train"):
        for path in sorted((dataset / folder).iterdir()):
            digest.update(f"{folder}/{path.name}:{sha256_of(path)};".encode())
    return digest.hexdigest()


def hotspot_metrics(detector: CursorDetector, held_out: list[CursorCrop]) -> dict:
    """Hotspot error on crops with a pointer, and how often a crop without one yields a detection."""
    found = detector.locate([cv2.cvtColor(crop.image, cv2.COLOR_RGB2BGR) for crop in held_out])
    errors, missed, false_alarms, empty = [], 0, 0, 0
    for crop, detection in zip(held_out, found, strict=True):
        if crop.hotspot is None:
            empty += 1
            false_alarms += detection is not None
        elif detection is None:
            missed += 1
        else:
            errors.append(float(np.hypot(detection.x - crop.hotspot[0], detection.y - crop.hotspot[1])))
    with_pointer = len(errors) + missed
    errors_px = np.asarray(errors) if errors else np.asarray([np.inf])
    return {
        "hotspot_median_error_px": round(float(np.median(errors_px)), 2),
        "hotspot_within_3px": round(float((errors_px <= 3).sum() / max(with_pointer, 1)), 4),
        "hotspot_within_6px": round(float((errors_px <= 6).sum() / max(with_pointer, 1)), 4),
        "recall": round(len(errors) / max(with_pointer, 1), 4),
        "false_positive_rate": round(false_alarms / max(empty, 1), 4),
        "n_held_out_with_pointer": with_pointer,
        "n_held_out_without_pointer": empty,
    }


def train_cursor_detector(
    settings: DetectorTrainingSettings,
    picture_for: Callable[[int], np.ndarray],
    work_dir: Path,
    log: Callable[[str], None] = print,
) -> tuple[CursorDetector, list[CursorCrop]]:
    """Train from `settings.model_yaml` on generated crops in `work_dir`.

    `picture_for(j)` gives the j-th medical picture for the slides behind the pointers. Returns
    the detector, whose weights lie in `work_dir` until saved, and the held-out crops it was scored on.
    """
    settings = settings.validated()
    started = time.perf_counter()
    use_ultralytics_offline()
    import torch
    from ultralytics import YOLO

    torch.set_num_threads(settings.threads)
    data, held_out = write_dataset(work_dir / "dataset", settings, picture_for)
    log(f"cursor detector: {settings.train_crops} training and {settings.val_crops} held-out crops written")
    model = YOLO(settings.model_yaml, task="pose")

    def report_epoch(trainer) -> None:
        if trainer.epoch < trainer.epochs:  # the final validation of the best weights calls this again
            pose_map50 = trainer.metrics.get("metrics/mAP50(P)", float("nan"))
            log(
                f"cursor detector: epoch {trainer.epoch + 1} of {trainer.epochs}, pose mAP50 {pose_map50:.3f}"
            )

    model.add_callback("on_fit_epoch_end", report_epoch)
    model.train(
        data=str(data),
        epochs=settings.epochs,
        imgsz=CROP_PX,
        batch=settings.batch,
        device="cpu",
        workers=0,
        pretrained=False,
        amp=False,
        seed=settings.seed,
        deterministic=True,
        project=str(work_dir / "runs"),
        name="train",
        exist_ok=True,
        plots=False,
        verbose=False,
        mosaic=0.0,  # crops are already at run-time scale; mosaic would mix scales and cut pointers
        fliplr=0.0,  # pointers are never mirrored
        scale=0.2,
        translate=0.1,
        close_mosaic=0,
        warmup_epochs=min(3, max(1, settings.epochs // 10)),  # short runs cannot spend 3 epochs warming up
    )
    validation = model.trainer.metrics  # the held-out split, scored with the best weights
    detector = CursorDetector(Path(model.trainer.best), {}, settings.min_confidence)
    reserved_themes = split_cursor_themes("reserved")
    reserved = (
        hotspot_metrics(
            detector,
            list(
                cursor_crops(settings.val_crops, settings.seed * 2 + 1, picture_for, themes=reserved_themes)
            ),
        )
        if reserved_themes
        else {}
    )
    detector.metrics = {
        "pose_map50": round(float(validation["metrics/mAP50(P)"]), 4),
        "pose_map50_95": round(float(validation["metrics/mAP50-95(P)"]), 4),
        "box_map50": round(float(validation["metrics/mAP50(B)"]), 4),
        **hotspot_metrics(detector, held_out),
        **{f"reserved_themes_{name}": value for name, value in reserved.items()},
        "training_data_sha256": training_data_fingerprint(data.parent),
        "n_train_crops": settings.train_crops,
        "epochs": settings.epochs,
        "train_seconds": round(time.perf_counter() - started, 1),
    }
    log(f"cursor detector: trained in {detector.metrics['train_seconds']:.0f} s, {detector.metrics}")
    return detector, held_out


def held_out_sheet(detector: CursorDetector, held_out: list[CursorCrop], n: int = 24) -> bytes:
    """The first n held-out crops with a pointer: its true hotspot in green, the detection in red."""
    crops = [crop for crop in held_out if crop.hotspot is not None][:n]
    found = detector.locate([cv2.cvtColor(crop.image, cv2.COLOR_RGB2BGR) for crop in crops])
    tiles = []
    for crop, detection in zip(crops, found, strict=True):
        tile = cv2.resize(crop.image, (2 * CROP_PX, 2 * CROP_PX), interpolation=cv2.INTER_NEAREST)
        cv2.circle(tile, tuple(round(2 * v) for v in crop.hotspot), 5, (40, 220, 40), 2)
        if detection is not None:
            cv2.drawMarker(
                tile, (round(2 * detection.x), round(2 * detection.y)), (230, 30, 30), cv2.MARKER_CROSS, 12, 2
            )
        tiles.append(tile)
    return contact_sheet_png(tiles, tile_width=3 * CROP_PX // 2, columns=8)
