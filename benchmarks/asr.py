"""ASR accuracy and speed against the demo corpus's ground truth, for each engine.

    python benchmarks/asr.py [--corpus DATA_ROOT ...] [--engines faster-whisper,whisperx]
                             [--align-model DIR] [--threads 2]

Each configuration runs in a fresh process, so its peak RSS is its own. A corpus is a data root
holding `ground_truth/<channel>/<id>.json` and `videos/<channel>/<id>.mp4`; by default the data
root (MEDNARRATIVES_DATA_ROOT or data/) when it has a demo corpus, otherwise the default corpus
generated into a temporary folder. faster-whisper runs three ways to show what the medical
vocabulary does: no prompt, the vocabulary prompt, and (in the "+ corrections" column) the
correction pass on top. Figures are printed for training and reserved styles apart, and for the
default engine per style factor. whisperx reports word-start error only with an alignment model
(--align-model); without one it still reports WER and speed of its transcription.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import math
import multiprocessing
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from mednarratives_assets.asr.audio import load_audio
from mednarratives_assets.asr.engines import (
    AlignmentModelUnavailable,
    AsrSettings,
    WhisperXEngine,
    build_engine,
)
from mednarratives_assets.asr.vocabulary import MedicalVocabulary
from mednarratives_assets.evaluation.corpus import Lecture, Stopwatch, lectures_of, run_lectures
from mednarratives_assets.evaluation.report import Check, peak_rss_mb
from mednarratives_assets.evaluation.style_groups import StyleGroups
from mednarratives_assets.evaluation.transcript_scores import Score, TimedWord, score_words, total
from mednarratives_assets.settings import DataLayout

TARGET_X_REAL_TIME = 15.0
TARGET_WER = 0.10
TARGET_START_ERROR_S = 0.080


def narrator_words(lecture: Lecture) -> list[TimedWord]:
    return [TimedWord(w["word"], w["start_s"]) for w in lecture.truth["words"]]


def run_configuration(corpora: list[str], settings: AsrSettings) -> dict:
    """In a fresh process: transcribe every lecture, score it, and measure time and memory."""
    vocabulary = MedicalVocabulary()
    try:
        engine = build_engine(settings)
        word_times = True
    except AlignmentModelUnavailable:
        engine = WhisperXEngine(settings.validated(), require_alignment=False)
        word_times = False
    started = time.perf_counter()
    warm_up = np.zeros(16_000 * 2, np.float32)  # loads the models outside the timed runs
    if word_times:
        engine.transcribe(warm_up, lambda _: None)
    else:
        engine.transcribe_segments(warm_up, lambda _: None)
    load_s = time.perf_counter() - started

    def transcribe_and_score(lecture: Lecture, stopwatch: Stopwatch) -> tuple[Score, Score, float, dict]:
        """The lecture's words scored as heard and after the correction pass, and its seconds of audio."""
        truth = narrator_words(lecture)
        audio = load_audio(lecture.video)
        with stopwatch.timed():
            if word_times:
                result = engine.transcribe(audio.samples, lambda _: None)
                words = [TimedWord(w.word, w.start_s) for w in result.words]
                texts = [s.text for s in result.segments]
            else:
                segments = engine.transcribe_segments(audio.samples, lambda _: None)
                texts = [s["text"] for s in segments]
                words = [TimedWord(w, s["start"]) for s in segments for w in s["text"].split()]
        fixed = [w for text in texts for w in vocabulary.correct(text)[0].split()]
        corrected = score_words(truth, [TimedWord(w, 0.0) for w in fixed])
        return score_words(truth, words), corrected, audio.duration_s, lecture.truth

    run = run_lectures(corpora, transcribe_and_score)
    groups = StyleGroups(AsrTally)
    for raw, corrected, _, truth in run.results:
        groups.add(truth, raw, corrected)
    audio_s = sum(seconds for _, _, seconds, _ in run.results)
    return {
        "n_lectures": len(run.results),
        "overall": groups.overall.figures(word_times),
        "splits": {split: tally.figures(word_times) for split, tally in groups.split_scores()},
        "factors": groups.factor_table(
            {
                "WER": lambda t: total(t.raw).wer,
                "+ corrections": lambda t: total(t.corrected).wer,
                "start error (median s)": lambda t: t.figures(word_times)["median_start_error_s"] or math.nan,
            }
        ),
        "audio_s": audio_s,
        "x_real_time": run.rate(audio_s),
        "load_s": load_s,
        "peak_rss_mb": peak_rss_mb(),
    }


@dataclass
class AsrTally:
    """Lectures' word scores as heard and after the correction pass, summed for one style group."""

    raw: list[Score] = field(default_factory=list)
    corrected: list[Score] = field(default_factory=list)

    def add(self, raw: Score, corrected: Score) -> None:
        self.raw.append(raw)
        self.corrected.append(corrected)

    def figures(self, word_times: bool) -> dict:
        raw, corrected = total(self.raw), total(self.corrected)
        errors = np.array(raw.start_errors_s)
        return {
            "reference_words": raw.reference_words,
            "wer": raw.wer,
            "wer_corrected": corrected.wer,
            "median_start_error_s": float(np.median(errors)) if word_times and len(errors) else None,
            "within_150ms": float(np.mean(errors <= 0.15)) if word_times and len(errors) else None,
        }


def draw_words(
    video: Path, truth: list[TimedWord], path: Path, start_s: float, seconds: float = 14.0
) -> None:
    """A picture of a stretch of a lecture: waveform, the narrator's words and the default
    engine's words at their start times, with the words the vocabulary pass changed marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    audio = load_audio(video)
    result = build_engine(AsrSettings()).transcribe(audio.samples, lambda _: None)
    vocabulary = MedicalVocabulary()
    corrections = [c for s in result.segments for c in vocabulary.correct(s.text)[1]]
    fixed = {heard for c in corrections for heard in c.heard.lower().split()}
    first, last = int(start_s * 16_000), int((start_s + seconds) * 16_000)
    t = np.arange(first, min(last, audio.samples.size)) / 16_000
    fig, ax = plt.subplots(figsize=(14, 3.6), dpi=110)
    ax.plot(t, audio.samples[first : first + t.size], color="0.75", linewidth=0.4)
    for words, y, color, label in (
        (truth, 0.9, "tab:green", "narrator (ground truth)"),
        ([TimedWord(w.word, w.start_s) for w in result.words], -0.9, "tab:blue", "faster-whisper"),
    ):
        shown = [w for w in words if start_s <= w.start_s < start_s + seconds]
        for k, w in enumerate(shown):
            corrected = color == "tab:blue" and w.word.strip(".,").lower() in fixed
            ax.axvline(w.start_s, ymin=0.5, ymax=0.98 if y > 0 else 0.02, color=color, alpha=0.35, lw=0.8)
            ax.text(
                w.start_s,
                y - 0.22 * (k % 2) * np.sign(y),
                w.word,
                fontsize=7,
                rotation=0,
                color="tab:orange" if corrected else color,
                ha="left",
                va="center",
            )
        ax.plot([], [], color=color, label=label)
    ax.plot([], [], color="tab:orange", label="changed by the vocabulary pass")
    ax.set_xlim(start_s, start_s + seconds)
    ax.set_ylim(-1.25, 1.25)
    ax.set_yticks([])
    ax.set_xlabel("seconds")
    ax.set_title(f"{video.parent.name}/{video.stem}: word start times")
    ax.legend(loc="lower right", fontsize=7, ncols=3)
    fig.tight_layout()
    fig.savefig(path)
    print(f"figure: {path}")


def default_corpus(tmp: Path) -> Path:
    root = DataLayout.from_env().data_root
    if lectures_of([root]):
        return root
    from mednarratives_assets.demo.corpus import DemoCorpusConfig, generate_corpus

    layout = DataLayout(tmp / "data", tmp / "data" / "db.duckdb")
    print(f"no demo corpus under {root}; generating the default one into {layout.data_root}")
    generate_corpus(layout, DemoCorpusConfig(), workers=2, log=lambda _: None)
    return layout.data_root


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", action="append", help="a data root with ground_truth/ and videos/")
    parser.add_argument("--engines", default="faster-whisper,whisperx")
    parser.add_argument("--align-model", default="", help="whisperx: a local wav2vec2 model folder")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads; 0: one per core")
    parser.add_argument("--figure", type=Path, help="also draw a lecture's words to this PNG")
    parser.add_argument("--figure-lecture", default="", help="channel/video_id to draw (default: the first)")
    parser.add_argument("--figure-start", type=float, default=0.0, help="where the drawn stretch starts (s)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        corpora = args.corpus or [str(default_corpus(Path(tmp)))]
        print(f"corpus: {', '.join(corpora)} ({len(lectures_of(corpora))} lectures)")
        default = AsrSettings(threads=args.threads, align_model=args.align_model)
        configurations = []
        for engine in args.engines.split(","):
            prompts = (False, True) if engine == "faster-whisper" else (True,)
            configurations += [replace(default, engine=engine, vocabulary_prompt=p) for p in prompts]
        spawn = multiprocessing.get_context("spawn")
        header = (
            f"{'engine':<15} {'prompt':<7} {'styles':<9} {'WER':>6} {'+ corrections':>14} {'start err':>10} "
            f"{'<=150ms':>8} {'x real time':>12} {'load s':>7} {'peak RSS':>9}"
        )
        print(header)
        results = []
        for settings in configurations:
            with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as pool:
                r = pool.submit(run_configuration, corpora, settings).result()
            results.append((settings, r))
            for split, figures in r["splits"].items():
                start = (
                    f"{figures['median_start_error_s'] * 1000:>7.0f} ms {figures['within_150ms']:>8.1%}"
                    if figures["median_start_error_s"] is not None
                    else f"{'n/a':>10} {'':>8}"
                )
                print(
                    f"{settings.engine:<15} {'medical' if settings.vocabulary_prompt else 'none':<7} "
                    f"{split:<9} {figures['wer']:>6.2%} {figures['wer_corrected']:>14.2%} {start} "
                    f"{r['x_real_time']:>11.1f}x {r['load_s']:>7.1f} {r['peak_rss_mb']:>6.0f} MB",
                    flush=True,
                )
        first = results[0][1]
        print(f"({first['overall']['reference_words']} reference words, {first['audio_s']:.0f} s of audio)")
        if any(s.engine == "whisperx" and r["median_start_error_s"] is None for s, r in results):
            print("whisperx: no alignment model, so no word times; pass --align-model (see asr/engines.py)")
        measured = next((r for s, r in results if s == default), None)
        if measured is not None:
            print("\ndefault engine (faster-whisper, medical prompt and corrections):")
            for split, figures in measured["splits"].items():
                print(f"-- {split} styles")
                checks = [
                    Check("x real time", measured["x_real_time"], TARGET_X_REAL_TIME, "{:g}".format),
                    Check(
                        "WER with corrections", figures["wer_corrected"], TARGET_WER, "{:.0%}".format, "<="
                    ),
                ]
                if figures["median_start_error_s"] is not None:
                    checks.append(
                        Check(
                            "median word-start error",
                            figures["median_start_error_s"],
                            TARGET_START_ERROR_S,
                            lambda seconds: f"{seconds * 1000:.0f} ms",
                            "<=",
                        )
                    )
                for check in checks:
                    print(f"  {check.verdict}  {check.name} {check.requirement}")
            print("\n-- by style factor (default engine)")
            print(measured["factors"])
        if args.figure:
            chosen = [
                lecture
                for lecture in lectures_of(corpora[:1])
                if f"{lecture.video.parent.name}/{lecture.video.stem}".endswith(args.figure_lecture)
            ]
            draw_words(chosen[0].video, narrator_words(chosen[0]), args.figure, args.figure_start)


if __name__ == "__main__":
    main()
