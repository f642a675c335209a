"""Benchmark scores of CLIP models: zero-shot classification and retrieval on held-out images.

Three held-out sets:
- `held_out_pairs`: our pairs from the lectures GenMedCLIP never trained on (training.json
  lists them), with their texts from curated_text as in training; labels are the pairs' domains.
- `medpix_dev`: the dev split of a MedPix folder (metadata.jsonl), with CT or MR and the body
  region; absent folders are skipped.
- `packaged_images`: real medical images that pip packages ship (stages/packaged_eval_images.py),
  with their modality and, where known, body region; those within the training's
  `duplicate_distance` pHash bits of an image a scored model trained on are dropped.

Each score is one row of BENCHMARK_SCHEMA. Zero-shot classes are matched by prompt ensembles
(several phrasings and names, their text embeddings averaged); retrieval counts a hit when one of the top k
holds a relevant item (captions can repeat, so every image with the same text is relevant).
"""

from __future__ import annotations

import json
import math
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import numpy as np
import polars as pl
import torch
from matplotlib.figure import Figure
from PIL import Image

from mednarratives_assets.contact_sheets import figure_png
from mednarratives_assets.domains import DOMAIN_KEYWORDS, DOMAINS
from mednarratives_assets.stages.curated_text import with_curated_texts
from mednarratives_assets.stages.genmedclip_model import (
    SavedClip,
    create_model,
    pair_text,
    read_preprocessed,
    untrained_model,
)
from mednarratives_assets.stages.packaged_eval_images import EvalImage, packaged_eval_images

BENCHMARK_SCHEMA = {
    "model_id": pl.String,
    "benchmark": pl.String,
    "task": pl.String,
    "domain": pl.String,
    "metric": pl.String,
    "value": pl.Float64,
    "n": pl.Int64,
    "created_at": pl.Datetime("us", "UTC"),
}
RECALL_AT = (1, 5, 10)
UNTRAINED_ID = "genmedclip_untrained"  # the first model's config and seed, before training
# Prompts phrased as lecturers speak, since that is the text the models learn from.
TEMPLATES = ("{}", "a {} image", "here is a {}", "this is a {} of the patient")
# A domain's prompts use its first three names in aligned_pairs' keywords ("ct", "computed tomography", ...).
DOMAIN_WORDS = {domain: names[:3] for domain, (names, _) in DOMAIN_KEYWORDS.items()}
MODALITY_WORDS = {"CT": DOMAIN_WORDS["CT"], "MRI": DOMAIN_WORDS["MRI"]}
MEDPIX_MODALITIES = {"CT": "CT", "MR": "MRI"}
BODY_REGION_WORDS = {
    "Head": ("head", "brain"),
    "Spine and Muscles": ("spine", "musculoskeletal"),
    "Thorax": ("chest", "thorax"),
    "Abdomen": ("abdomen",),
    "Reproductive and Urinary System": ("pelvis", "kidney"),
}


@dataclass
class EvalSet:
    """Images with their text and, per zero-shot task, a label (None where unknown)."""

    benchmark: str
    image_paths: list[Path]
    texts: list[str]
    domains: list[str]  # each image's domain, for per-domain rows
    labels: dict[str, list[str | None]]  # task -> label per image
    classes: dict[str, dict[str, tuple[str, ...]]]  # task -> class -> words its prompts use


@dataclass
class ClipEncoder:
    """A CLIP model with its preprocessing and tokenizer, encoding to unit vectors."""

    model: torch.nn.Module
    preprocess: Callable
    tokenizer: Callable
    device: str
    batch_size: int = 64

    @torch.no_grad()
    def images(self, paths: list[Path]) -> torch.Tensor:
        self.model.eval()
        out = []
        for start in range(0, len(paths), self.batch_size):
            batch = [
                read_preprocessed(path, self.preprocess, "benchmark image")
                for path in paths[start : start + self.batch_size]
            ]
            out.append(self.model.encode_image(torch.stack(batch).to(self.device), normalize=True).cpu())
        return torch.cat(out)

    @torch.no_grad()
    def texts(self, texts: list[str]) -> torch.Tensor:
        self.model.eval()
        out = [
            self.model.encode_text(
                self.tokenizer(texts[i : i + self.batch_size]).to(self.device), normalize=True
            )
            for i in range(0, len(texts), self.batch_size)
        ]
        return torch.cat(out).cpu()


def held_out_pairs_set(
    data_root: Path, pairs: pl.DataFrame, curated: pl.DataFrame, held_out_pair_ids: list[str]
) -> EvalSet:
    """The held-out pairs of `pairs` (aligned_pairs), each image with the text the models match it
    with: from `curated` (curated_text), as in training. ValueError naming the pairs it lacks."""
    held_out = pairs.filter(pl.col("pair_id").is_in(held_out_pair_ids)).sort("pair_id")
    held_out = with_curated_texts(held_out, curated, then="score again").with_columns(pair_text())
    domains = held_out["domain"].to_list()
    return EvalSet(
        benchmark="held_out_pairs",
        image_paths=[data_root / p for p in held_out["image_path"]],
        texts=held_out["text"].to_list(),
        domains=domains,
        labels={"zero_shot_domain": [d if d != "other" else None for d in domains]},
        classes={"zero_shot_domain": {d: DOMAIN_WORDS[d] for d in DOMAINS if d != "other"}},
    )


def medpix_dev_set(folder: Path) -> EvalSet | None:
    """MedPix's dev split: its images, captions, modality (CT or MR) and body region; None when absent."""
    metadata = folder / "metadata.jsonl"
    if not metadata.is_file():
        return None
    records = [json.loads(line) for line in metadata.read_text(encoding="utf-8").splitlines() if line.strip()]
    dev = [r for r in records if r.get("split") == "dev" and (folder / r["image"]).is_file()]
    if not dev:
        return None
    modalities = [MEDPIX_MODALITIES.get(r.get("modality")) for r in dev]
    return EvalSet(
        benchmark="medpix_dev",
        image_paths=[folder / r["image"] for r in dev],
        texts=[str(r["caption"]).strip() for r in dev],
        domains=[m or "other" for m in modalities],
        labels={
            "zero_shot_modality": modalities,
            "zero_shot_body_region": [
                r.get("location_category") if r.get("location_category") in BODY_REGION_WORDS else None
                for r in dev
            ],
        },
        classes={"zero_shot_modality": MODALITY_WORDS, "zero_shot_body_region": BODY_REGION_WORDS},
    )


def trained_image_hashes(
    pairs: pl.DataFrame, train_pair_ids: set[str], log: Callable[[str], None] = print
) -> list[str]:
    """The pHashes of the pairs' images (aligned_pairs.phash, that of each crop under the data root)
    among `train_pair_ids`; a training pair no longer in `pairs` is counted in the log."""
    trained = pairs.filter(pl.col("pair_id").is_in(sorted(train_pair_ids)))
    if missing := len(train_pair_ids) - trained["pair_id"].n_unique():
        log(f"{missing} training pairs are no longer in aligned_pairs: their images cannot be compared")
    return trained["phash"].to_list()


def packaged_images_set(
    folder: Path,
    images: list[EvalImage],
    trained_hashes: list[str],
    duplicate_distance: int,
    log: Callable[[str], None] = print,
) -> EvalSet | None:
    """`images` as PNGs in `folder`, less those within `duplicate_distance` pHash bits of a
    trained-on image (as genmedclip's held-out split drops them); None when none is left.

    Zero-shot modality over the domains present, body region over the regions present; a task
    with fewer than two classes is left out.
    """
    trained = np.array([int(h, 16) for h in trained_hashes], dtype=np.uint64)
    kept = [
        image
        for image in images
        if not (np.bitwise_count(trained ^ np.uint64(int(image.phash, 16))) <= duplicate_distance).any()
    ]
    log(
        f"packaged_images: {len(kept)} images, {len(images) - len(kept)} dropped within "
        f"{duplicate_distance} pHash bits of a training image"
    )
    if not kept:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for image in kept:
        paths.append(folder / f"{image.source.image_id}.png")
        Image.fromarray(image.pixels).save(paths[-1])
    modalities = [image.source.modality for image in kept]
    regions = [image.source.region for image in kept]
    log(f"packaged_images by modality: {dict(sorted(Counter(modalities).items()))}")
    labels = {"zero_shot_modality": list(modalities), "zero_shot_body_region": regions}
    classes = {
        "zero_shot_modality": {d: DOMAIN_WORDS[d] for d in DOMAINS if d in modalities},
        "zero_shot_body_region": {r: words for r, words in BODY_REGION_WORDS.items() if r in regions},
    }
    tasks = [task for task, names in classes.items() if len(names) >= 2]
    return EvalSet(
        benchmark="packaged_images",
        image_paths=paths,
        texts=[image.source.caption for image in kept],
        domains=modalities,
        labels={task: labels[task] for task in tasks},
        classes={task: classes[task] for task in tasks},
    )


def recall_at_k(similarity: torch.Tensor, relevant: torch.Tensor, ks=RECALL_AT) -> dict[int, float]:
    """Share of queries (rows) with a relevant item (`relevant`, same shape) among their top k."""
    order = similarity.argsort(dim=1, descending=True)
    hits = relevant.gather(1, order)
    return {k: hits[:, :k].any(dim=1).float().mean().item() for k in ks}


def zero_shot_predictions(
    encoder: ClipEncoder, image_features: torch.Tensor, classes: dict[str, tuple[str, ...]]
) -> list[str]:
    """The class whose prompt embedding, averaged over every template and every name of the class by
    open_clip's build_zero_shot_classifier, lies closest to each image."""
    from open_clip import build_zero_shot_classifier  # imports transformers: on use only

    names = list(classes)
    # Templates are callables on the class name, one per (name, template). Classes with fewer names
    # cycle them up to the least common multiple of the counts, so every name weighs the same.
    repeats = math.lcm(*(len(words) for words in classes.values()))
    templates = [partial(_prompt, classes, template, i) for i in range(repeats) for template in TEMPLATES]
    weights = build_zero_shot_classifier(
        _TextTower(encoder), _Prompts, names, templates, num_classes_per_batch=None
    )
    best = (image_features @ weights).argmax(dim=1)
    return [names[i] for i in best.tolist()]


def _prompt(classes: dict[str, tuple[str, ...]], template: str, index: int, name: str) -> str:
    words = classes[name]
    return template.format(words[index % len(words)])


class _Prompts(list):
    """The prompts as build_zero_shot_classifier's "tokens": the encoder tokenizes them itself."""

    def to(self, device) -> _Prompts:
        return self


@dataclass
class _TextTower:
    """Any encoder's `texts` as the `encode_text` that build_zero_shot_classifier calls."""

    encoder: ClipEncoder

    def encode_text(self, prompts: _Prompts, normalize: bool = True) -> torch.Tensor:
        return self.encoder.texts(list(prompts))  # unit vectors already


def score_model(model_id: str, encoder: ClipEncoder, eval_set: EvalSet, created_at: datetime) -> pl.DataFrame:
    """Every score of one model on one set, as rows of BENCHMARK_SCHEMA."""
    rows = []

    def add(task: str, domain: str, metric: str, value: float, n: int) -> None:
        rows.append((model_id, eval_set.benchmark, task, domain, metric, float(value), n, created_at))

    if not eval_set.image_paths:
        return pl.DataFrame(schema=BENCHMARK_SCHEMA)
    image_features = encoder.images(eval_set.image_paths)
    domains = np.array(eval_set.domains)
    for task, labels in eval_set.labels.items():
        known = np.array([label is not None for label in labels])
        if not known.any():
            continue
        predicted = np.array(
            zero_shot_predictions(encoder, image_features[torch.from_numpy(known)], eval_set.classes[task])
        )
        correct = predicted == np.array([label for label in labels if label is not None])
        add(task, "all", "accuracy", correct.mean(), int(known.sum()))
        for domain in sorted(set(domains[known])):
            in_domain = domains[known] == domain
            add(task, domain, "accuracy", correct[in_domain].mean(), int(in_domain.sum()))
    unique_texts = sorted(set(eval_set.texts))
    text_features = encoder.texts(unique_texts)
    relevant = torch.tensor([[text == other for other in unique_texts] for text in eval_set.texts])
    similarity = image_features @ text_features.T
    for task, sims, rel in (
        ("image_to_text", similarity, relevant),
        ("text_to_image", similarity.T, relevant.T),
    ):
        for k, value in recall_at_k(sims, rel).items():
            add(task, "all", f"R@{k}", value, sims.shape[0])
    return pl.DataFrame(rows, schema=BENCHMARK_SCHEMA, orient="row")


def score_models(
    data_root: Path,
    pairs: pl.DataFrame,
    curated: pl.DataFrame,
    folders: dict[str, Path],
    medpix: EvalSet | None,
    device: str,
    log: Callable[[str], None] = print,
    packaged_images: bool = True,
) -> pl.DataFrame:
    """The trained models in `folders` (model id -> folder) and the untrained start of the first
    (UNTRAINED_ID), on the first model's held-out pairs of `pairs` (aligned_pairs, with their texts
    from `curated`, curated_text), on `medpix` when given and, with
    `packaged_images`, on the images pip packages ship less those any of the models trained on."""
    trainings = {model_id: SavedClip.load(folder).training for model_id, folder in folders.items()}
    first_id, first = next(iter(folders.items()))
    encoders = {
        model_id: ClipEncoder(*create_model(folder, device), device=device)
        for model_id, folder in folders.items()
    }
    encoders[UNTRAINED_ID] = ClipEncoder(*untrained_model(first, device), device=device)
    eval_sets = [held_out_pairs_set(data_root, pairs, curated, trainings[first_id]["held_out_pair_ids"])]
    eval_sets += [medpix] if medpix is not None else []
    with tempfile.TemporaryDirectory(prefix="packaged_images_") as folder:
        if packaged_images:
            trained_ids = {
                pair_id for training in trainings.values() for pair_id in training["train_pair_ids"]
            }
            packaged = packaged_images_set(
                Path(folder),
                packaged_eval_images(log=log),
                trained_image_hashes(pairs, trained_ids, log),
                max(training["settings"]["duplicate_distance"] for training in trainings.values()),
                log,
            )
            eval_sets += [packaged] if packaged is not None else []
        return benchmark_rows(encoders, eval_sets, log)


def benchmark_rows(
    models: dict[str, ClipEncoder], eval_sets: list[EvalSet], log: Callable[[str], None] = print
) -> pl.DataFrame:
    """All models on all sets, stamped with one time."""
    created_at = datetime.now(UTC)
    frames = []
    for model_id, encoder in models.items():
        for eval_set in eval_sets:
            log(f"scoring {model_id} on {eval_set.benchmark} ({len(eval_set.image_paths)} images)")
            frames.append(score_model(model_id, encoder, eval_set, created_at))
    return pl.concat(frames) if frames else pl.DataFrame(schema=BENCHMARK_SCHEMA)


def scores_png(scores: pl.DataFrame) -> bytes | None:
    """The overall scores as grouped bars, one group per benchmark, task and metric; None without rows."""
    overall = scores.filter(pl.col("domain") == "all")
    if overall.is_empty():
        return None
    labels = overall.select("benchmark", "task", "metric").unique(maintain_order=True).rows()
    models = overall["model_id"].unique(maintain_order=True).to_list()
    figure = Figure(figsize=(7, 0.32 * len(labels) * len(models) / 2 + 1.2), dpi=100)
    axis = figure.subplots()
    height = 0.8 / len(models)
    for offset, model in enumerate(models):
        values = dict(
            overall.filter(pl.col("model_id") == model)
            .select(pl.concat_str("benchmark", "task", "metric", separator="|"), "value")
            .rows()
        )
        axis.barh(
            [i + offset * height for i in range(len(labels))],
            [values.get("|".join(label), 0.0) for label in labels],
            height=height,
            label=model,
        )
    axis.set_yticks([i + height * (len(models) - 1) / 2 for i in range(len(labels))])
    axis.set_yticklabels([f"{b}: {t} {m}" for b, t, m in labels], fontsize=8)
    axis.invert_yaxis()
    axis.set_xlim(0, 1)
    axis.set_xlabel("score")
    axis.legend(fontsize=8, loc="lower right")
    return figure_png(figure)
