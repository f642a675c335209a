"""curated_text's backends on narration whose sentences know their role (issue 24, item 5), with
training and reserved narration styles reported apart.

    python benchmarks/text.py [--n 200] [--seed 0] [--corpus DATA_ROOT ...]
                              [--backend openai|local ...] [--model-n 20]

Two sources of chunks, each split into training and reserved styles (synthetic/styles.py; the
narration axis is synthetic/narration.py, whose reserved styles no rule, prompt or setting was
written with):
- generated text (always): --n case chunks per split over the packaged images, the narration as
  said and as an ASR engine might write it (`demo.narrated_text`: fillers, repeated words, terms
  misheard as the confusion list says), with the boxes a pointer would leave. Each chunk becomes
  an aligned_pairs row the way the stage makes one.
- rendered lectures (--corpus, a data root that `mednarratives demo --styles training|reserved`
  made and materialized): every pair the pipeline made, its caption Whisper's transcript and its
  boxes the pointer's dwells, matched to the truth chunk it shows (`text_scores.rendered_chunks`).
  Lectures of the demo's fixed looks count as split "demo".

Backends: rules always, on every chunk; with --backend, a language model on the first --model-n
chunks of each source and split, beside rules on the same chunks. No answer cache: every pair is
asked.
- openai: the project's OpenAI-compatible server (`python -m mednarratives_assets.llm.server`,
  started here on a free loopback port, serving the pip-shipped SmolLM2);
- local: the same model loaded in this process.
Scores are `evaluation.text_scores.TextScore`'s. Seconds per pair are curate_channel's; on
generated text they include making the rules texts, which every backend needs (its fallback and
its guards' reference).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from mednarratives_assets.asr.vocabulary import MedicalVocabulary
from mednarratives_assets.demo.narrated_text import NarratedChunk, narrated_chunks
from mednarratives_assets.evaluation.corpus import lectures_of, materialized_tables
from mednarratives_assets.evaluation.style_groups import SPLIT_ORDER, lecture_factors
from mednarratives_assets.evaluation.text_scores import TextScore, TruthChunk, rendered_chunks
from mednarratives_assets.llm.server import served
from mednarratives_assets.llm.smollm2 import smollm2_gguf
from mednarratives_assets.stages.aligned_pairs import medical_sentences, roi_text
from mednarratives_assets.stages.curated_text import (
    RULES_COLUMNS,
    AnswerCache,
    CurationSettings,
    curate_channel,
)
from mednarratives_assets.synthetic.medical_images import packaged_images
from mednarratives_assets.synthetic.narration import DEMO_NARRATION
from mednarratives_assets.synthetic.styles import SPLITS, split_narrations

CHANNEL = "text-benchmark"
CORPUS_TABLES = ("stable_chunks", "aligned_pairs", "boxes")
PAIR_COLUMNS = ("channel", "pair_id", "video_id", "chunk_index", "caption", *RULES_COLUMNS.values())


@dataclass
class Chunks:
    """One source and split's chunks: their truth, their narration style, and for rendered lectures
    their aligned_pairs rows (generated text makes its rows when curated, so that their time counts)."""

    truths: list[TruthChunk]
    narrations: list[str]
    pairs: list[dict] | None = None

    def subset(self, keep: list[int]) -> Chunks:
        pairs = None if self.pairs is None else [self.pairs[i] for i in keep]
        return Chunks([self.truths[i] for i in keep], [self.narrations[i] for i in keep], pairs)


def generated_pairs(chunks: list[NarratedChunk], vocabulary: MedicalVocabulary) -> pl.DataFrame:
    """aligned_pairs rows of generated chunks, their texts made as the stage makes them."""
    rows = []
    for index, chunk in enumerate(chunks):
        corrected, _ = vocabulary.correct(chunk.heard)
        rows.append(
            {
                "channel": CHANNEL,
                "pair_id": chunk.chunk_id,
                "video_id": chunk.chunk_id,
                "chunk_index": index,
                "caption": chunk.heard,
                "corrected_caption": corrected,
                "medical_text": medical_sentences(corrected, vocabulary.terms),
                "roi_text": roi_text([box.phrase for box in chunk.boxes]),
            }
        )
    return pl.DataFrame(rows)


def generated_text(n: int, seed: int, vocabulary: MedicalVocabulary) -> dict[str, tuple[Chunks, list]]:
    """Per split, n generated chunks in that split's narrations by turns."""
    by_split = {}
    for split in SPLITS:
        made = list(
            narrated_chunks(packaged_images(), n, seed, vocabulary, narrations=tuple(split_narrations(split)))
        )
        truths = [
            TruthChunk(c.chunk_id, c.script, c.heard, [(b.phrase, b.role) for b in c.boxes]) for c in made
        ]
        by_split[split] = (Chunks(truths, [c.narration for c in made]), made)
    return by_split


def rendered_lectures(corpora: list[Path]) -> dict[str, Chunks]:
    """Per split, every pair of the corpora's lectures that shows a still medical chunk of its truth."""
    by_split: dict[str, Chunks] = {}
    for corpus in corpora:
        tables = materialized_tables(corpus, CORPUS_TABLES)
        for lecture in lectures_of([corpus]):
            truth = lecture.truth
            of = {
                name: table.filter(
                    (pl.col("channel") == truth["channel"]) & (pl.col("video_id") == truth["video_id"])
                )
                for name, table in tables.items()
            }
            matched = rendered_chunks(
                truth, of["stable_chunks"].to_dicts(), of["aligned_pairs"].to_dicts(), of["boxes"].to_dicts()
            )
            factors = lecture_factors(truth)
            chunks = by_split.setdefault(factors["split"], Chunks([], [], []))
            pairs = {p["pair_id"]: p for p in of["aligned_pairs"].select(PAIR_COLUMNS).to_dicts()}
            chunks.truths += matched
            chunks.narrations += [factors.get("narration", DEMO_NARRATION)] * len(matched)
            chunks.pairs += [pairs[m.pair_id] for m in matched]
    return dict(sorted(by_split.items(), key=lambda item: SPLIT_ORDER.index(item[0])))


@dataclass
class Result:
    score: TextScore
    counts: dict
    seconds_per_pair: float


def curated(
    chunks: Chunks,
    made: list[NarratedChunk] | None,
    vocabulary: MedicalVocabulary,
    settings: CurationSettings,
) -> Result:
    """The chunks through `curate_channel`, scored."""
    started = time.perf_counter()
    pairs = generated_pairs(made, vocabulary) if chunks.pairs is None else pl.DataFrame(chunks.pairs)
    result = curate_channel(pairs, settings, vocabulary.terms, AnswerCache(None), log=lambda _: None)
    seconds = (time.perf_counter() - started) / max(len(chunks.truths), 1)
    score = TextScore()
    for truth, row in zip(chunks.truths, result.table.iter_rows(named=True), strict=True):
        score.add(truth.script, truth.heard, row, truth.boxes)
    return Result(score, result.counts.metadata(), seconds)


def by_narration(
    chunks: Chunks, made: list[NarratedChunk] | None, vocabulary: MedicalVocabulary
) -> dict[str, Result]:
    """Rules, narration style by narration style."""
    results = {}
    for narration in sorted(set(chunks.narrations)):
        keep = [i for i, n in enumerate(chunks.narrations) if n == narration]
        of_narration = None if made is None else [made[i] for i in keep]
        results[narration] = curated(chunks.subset(keep), of_narration, vocabulary, CurationSettings())
    return results


COLUMNS = ("chunks", "ASR WER", "caption WER", "med P", "med R", "ROI P", "ROI R", "box P", "box R", "s/pair")


def print_table(title: str, results: dict[str, Result]) -> None:
    print(f"\n-- {title}")
    print("| | " + " | ".join(COLUMNS) + " | guards |")
    print("|---" * (len(COLUMNS) + 2) + "|")
    for name, result in results.items():
        score, counts = result.score, result.counts
        figures = (
            score.heard_wer,
            score.caption_wer,
            score.medical.precision,
            score.medical.recall,
            score.roi.precision,
            score.roi.recall,
            score.boxes.precision,
            score.boxes.recall,
        )
        guards = (
            "-"
            if counts["n_model_calls"] == 0
            else ", ".join(
                [f"{counts['n_accepted']} accepted"]
                + [f"{n} {reason}" for reason, n in counts["rejected_by_reason"].items()]
            )
        )
        cells = [str(score.chunks), *(f"{f:.3f}" for f in figures), f"{result.seconds_per_pair:.4f}"]
        print(f"| {name} | " + " | ".join(cells) + f" | {guards} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="generated chunks per split")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--corpus", action="append", type=Path, default=[], help="a materialized corpus")
    parser.add_argument("--backend", action="append", choices=("openai", "local"), default=[])
    parser.add_argument("--model-n", type=int, default=20, help="chunks per source and split for a model")
    args = parser.parse_args()
    vocabulary = MedicalVocabulary()
    rendered = rendered_lectures(args.corpus)  # first: a corpus that is not there fails at once
    sources: dict[str, dict[str, tuple[Chunks, list[NarratedChunk] | None]]] = {
        "generated text": generated_text(args.n, args.seed, vocabulary)
    }
    if rendered:
        sources["rendered lectures"] = {split: (chunks, None) for split, chunks in rendered.items()}
    with ExitStack() as stack:
        models = {}
        if "openai" in args.backend:
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            smollm2_gguf()  # fetched before the server's start-up clock, and a clear error when it cannot be
            url = stack.enter_context(served(scratch / "server.log"))
            models["openai (SmolLM2)"] = CurationSettings(
                backend="openai", base_url=url, model=smollm2_gguf().stem, concurrency=1
            ).validated()
        if "local" in args.backend:
            models["local (SmolLM2)"] = CurationSettings(backend="local").validated()
        for source, splits in sources.items():
            for split, (chunks, made) in splits.items():
                counts = f"{len(chunks.truths)} chunks, {sum(len(t.script) for t in chunks.truths)} sentences"
                results = {"rules": curated(chunks, made, vocabulary, CurationSettings())}
                if models:
                    keep = list(range(min(args.model_n, len(chunks.truths))))
                    few, few_made = chunks.subset(keep), None if made is None else made[: len(keep)]
                    results[f"rules, first {len(keep)}"] = curated(
                        few, few_made, vocabulary, CurationSettings()
                    )
                    for name, settings in models.items():
                        results[f"{name}, first {len(keep)}"] = curated(few, few_made, vocabulary, settings)
                print_table(f"{source}, {split} styles ({counts})", results)
                print_table(
                    f"{source}, {split} styles, rules by narration", by_narration(chunks, made, vocabulary)
                )


if __name__ == "__main__":
    main()
