"""Peak memory of the heavy stages on long and large lectures: bounded by the work, not the video.

    python benchmarks/memory.py [--work-dir /tmp/mednarratives-memory] [--quick]
                                [--lectures 1080p-3h,4k-100-slides] [--stages videos,stable_chunks,...]
                                [--classifier PATH] [--detector PATH] [--limit-mb 2500]

Two lectures are built once and kept under --work-dir (a later run reuses them):
- `1080p-3h`: three hours of 1920x1080 slides, each held for three minutes (slides with packaged
  medical images, bullet and title slides), with speech throughout: a dozen sentences spoken once
  by the demo's piper voice, looped in a shuffled order with pauses of 0.6 to 1.4 s;
- `4k-100-slides`: 100 distinct 3840x2160 slides of 3 s each, with the same speech.
Both are H.264 at 5 frames a second, encoded with x264's ultrafast preset to keep building cheap
(a real lecture has 25 to 30; the stages sample 6 to 10 a second, so at 5 fps they decode every
frame), with AAC audio at piper's 22,050 Hz. There is no mouse pointer.

Then each stage function runs on each lecture in a fresh process of its own, in pipeline order
(`videos` probe_channel, `stable_chunks` chunk_channel, `transcripts` transcribe_channel from an
empty cache, `cursor_traces` trace_channel), and the process's peak RSS (from os.wait4, that child
alone) is checked against --limit-mb, with the stage's time and speed (seconds of video per
second). `--quick` builds a 10-minute 1080p lecture and a 10-slide 4K one instead, for a smoke run.

Models: --classifier and --detector, else those in use (the data root's, else the shipped ones).
The output says which.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from mednarratives_assets.evaluation.report import Check, print_checks

CHANNEL = "bench"
STAGES = ("videos", "stable_chunks", "transcripts", "cursor_traces")
LIMIT_MB = 2500.0
FPS = 5
SENTENCES = [
    "Here is an axial CT of the abdomen after intravenous contrast.",
    "Notice the hypodense lesion in the right lobe of the liver.",
    "On the T2 weighted image the lesion is hyperintense.",
    "The findings suggest a simple cyst rather than a metastasis.",
    "This chest radiograph shows a right lower lobe consolidation.",
    "The costophrenic angle is blunted by a small pleural effusion.",
    "On the sagittal image the vertebral bodies keep their height.",
    "The ultrasound shows posterior acoustic shadowing behind the stone.",
    "The axial FLAIR image shows a hyperintense lesion near the ventricle.",
    "There is no midline shift and the basal cisterns are open.",
    "In this slide the stain marks the tumour cells in brown.",
    "Let us look at the next case together.",
]


@dataclass(frozen=True)
class LectureSpec:
    name: str
    size: tuple[int, int]
    duration_s: float
    slide_s: float
    distinct_slides: int  # slides cycle through this many renderings

    def describe(self) -> str:
        n = round(self.duration_s / self.slide_s)
        cycling = f", cycling through {self.distinct_slides}" if self.distinct_slides < n else ""
        length = f"{self.duration_s / 60:.0f} min" if self.duration_s >= 120 else f"{self.duration_s:.0f} s"
        return (
            f"{self.size[0]}x{self.size[1]}, {length}, {n} slides of {self.slide_s:g} s{cycling}, {FPS} fps"
        )


def lecture_specs(quick: bool) -> dict[str, LectureSpec]:
    if quick:
        specs = [
            LectureSpec("1080p-10min", (1920, 1080), 600.0, 60.0, 10),
            LectureSpec("4k-10-slides", (3840, 2160), 30.0, 3.0, 10),
        ]
    else:
        specs = [
            LectureSpec("1080p-3h", (1920, 1080), 3 * 3600.0, 180.0, 20),
            LectureSpec("4k-100-slides", (3840, 2160), 300.0, 3.0, 100),
        ]
    return {spec.name: spec for spec in specs}


# --- building the lectures (once) -----------------------------------------------------------


def data_root(work: Path, spec: LectureSpec) -> Path:
    return work / "lectures" / spec.name / "data"


def build_lecture(work: Path, spec: LectureSpec, speech: list) -> tuple[Path, str]:
    """The lecture's mp4, built unless an identical one is there; and how it came to be."""
    from mednarratives_assets.atomic_files import replaced_file, write_file
    from mednarratives_assets.synthetic.long_lecture import benchmark_slide, looped_speech, write_long_lecture
    from mednarratives_assets.synthetic.medical_images import packaged_images

    video = data_root(work, spec) / "videos" / CHANNEL / f"{spec.name}.mp4"
    manifest = video.with_name(f".{spec.name}.json")
    wanted = json.loads(json.dumps({"spec": asdict(spec), "fps": FPS, "sentences": SENTENCES, "format": 1}))
    if video.is_file() and manifest.is_file() and json.loads(manifest.read_text()) == wanted:
        return video, "cached"
    fresh = not speech
    utterances, sample_rate, speech_s = speech_once(speech)
    images = packaged_images()
    started = time.perf_counter()
    with replaced_file(video) as partial:
        write_long_lecture(
            partial,
            lambda k: benchmark_slide(spec.size, k % spec.distinct_slides, images),
            spec.slide_s,
            spec.duration_s,
            looped_speech(utterances, sample_rate, (0.6, 1.4)),
            sample_rate,
            fps=FPS,
        )
    write_file(manifest, json.dumps(wanted))
    seconds = time.perf_counter() - started
    spoken = f"; {len(SENTENCES)} sentences synthesized first, in {speech_s:.0f} s" if fresh else ""
    return video, (
        f"built in {seconds:.0f} s ({spec.duration_s / seconds:.1f}x real time), "
        f"{video.stat().st_size / 1e6:.0f} MB{spoken}"
    )


def speech_once(cache: list) -> tuple[list, int, float]:
    """The sentences spoken by the demo's piper voice, synthesized on first use."""
    if not cache:
        from mednarratives_assets.synthetic.speech import PiperNarrator

        started = time.perf_counter()
        narrator = PiperNarrator()
        cache += [[narrator.say(s).audio for s in SENTENCES], narrator.sample_rate]
        cache.append(time.perf_counter() - started)
    return cache[0], cache[1], cache[2]


def models_in_use(classifier: Path | None, detector: Path | None) -> tuple[Path, Path]:
    """The frame classifier and the cursor detector the stages use: those given, else the pipeline's."""
    from mednarratives_assets.defs.resources import build_resources
    from mednarratives_assets.settings import DataLayout

    models = build_resources(DataLayout.from_env())["models"]
    return classifier or models.source("frame_classifier"), detector or models.source("cursor_detector")


# --- one stage in its own process -----------------------------------------------------------


def run_stage(stage: str, root: Path, run_dir: Path, classifier: Path, detector: Path) -> dict:
    """In the child: run one stage function on the channel, timed; its inputs and outputs are
    parquet files in `run_dir`."""
    import polars as pl

    log_lines: list[str] = []
    log = log_lines.append
    started = time.perf_counter()
    result: dict = {}
    if stage == "videos":
        from mednarratives_assets.stages.videos import probe_channel

        videos = probe_channel(root, CHANNEL, log)
        videos.write_parquet(run_dir / "videos.parquet")
        result = {"rows": videos.height, "status": videos["status"].to_list()}
    else:
        for needed in ("videos", "stable_chunks")[: 2 if stage == "cursor_traces" else 1]:
            if not (run_dir / f"{needed}.json").is_file():
                raise SystemExit(f"{stage} needs the output of {needed}: run that stage first")
        videos = pl.read_parquet(run_dir / "videos.parquet")
    if stage == "stable_chunks":
        from mednarratives_assets.stages.frame_classifier import FrameClassifier
        from mednarratives_assets.stages.stable_chunks import ChunkingSettings, chunk_channel

        model = FrameClassifier.load(classifier)
        keyframes = root / "keyframes"
        shutil.rmtree(keyframes, ignore_errors=True)
        chunks = chunk_channel(
            root, keyframes, CHANNEL, videos, model.medical_scores, ChunkingSettings(), log
        )
        chunks.chunks.write_parquet(run_dir / "chunks.parquet")
        result = {
            "rows": chunks.chunks.height,
            "medical": int(chunks.chunks["is_medical"].sum()),
            "status": chunks.videos["status"].to_list(),
            "reason": chunks.videos["reason"].to_list(),
        }
    elif stage == "transcripts":
        from mednarratives_assets.asr.engines import AsrSettings, build_engine
        from mednarratives_assets.asr.vocabulary import MedicalVocabulary
        from mednarratives_assets.stages.transcripts import TranscriptCache, transcribe_channel

        cache = run_dir / "transcripts-cache"
        shutil.rmtree(cache, ignore_errors=True)
        engine = build_engine(AsrSettings())
        transcripts = transcribe_channel(
            root, CHANNEL, videos, engine, TranscriptCache(cache), MedicalVocabulary(), log
        )
        result = {
            "rows": transcripts.words.height,
            "status": transcripts.transcripts["status"].to_list(),
            "reason": transcripts.transcripts["reason"].to_list(),
        }
    elif stage == "cursor_traces":
        from mednarratives_assets.stages.cursor_detector import CursorDetector
        from mednarratives_assets.stages.cursor_traces import TraceSettings, trace_channel

        chunks = pl.read_parquet(run_dir / "chunks.parquet")
        traces = trace_channel(
            root, CHANNEL, videos, chunks, CursorDetector.load(detector), TraceSettings(), log
        )
        result = {
            "rows": traces.traces.height,
            "status": traces.videos["status"].to_list(),
            "reason": traces.videos["reason"].to_list(),
        }
    result["stage_s"] = time.perf_counter() - started
    result["video_s"] = float(videos["duration_s"].sum() or 0.0)
    result["log_tail"] = log_lines[-3:]
    return result


def run_child(arguments: list[str], log_path: Path) -> tuple[float, float]:
    """Run this script with `arguments` in a fresh process, its output going to `log_path`.
    Returns that process's own peak RSS in MB (os.wait4) and its wall time."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(log_path, "wb") as log:
        child = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), *arguments],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        _pid, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    wall_s = time.perf_counter() - started
    if child.returncode != 0:
        tail = log_path.read_text(errors="replace").splitlines()[-15:]
        raise RuntimeError(
            f"{' '.join(arguments[:2])} failed ({child.returncode}); see {log_path}:\n" + "\n".join(tail)
        )
    return usage.ru_maxrss / 1024, wall_s  # Linux: KiB


def child_main(args: argparse.Namespace) -> None:
    run_dir = Path(args.run_dir)
    result = run_stage(args.child, Path(args.data_root), run_dir, Path(args.classifier), Path(args.detector))
    (run_dir / f"{args.child}.json").write_text(json.dumps(result))


# --- the report -----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/mednarratives-memory"))
    parser.add_argument("--quick", action="store_true", help="a 10-minute 1080p and a 10-slide 4K lecture")
    parser.add_argument("--lectures", default="", help="comma-separated lecture names (default: both)")
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--classifier", type=Path, help="a frame classifier file")
    parser.add_argument("--detector", type=Path, help="a cursor detector file")
    parser.add_argument("--limit-mb", type=float, default=LIMIT_MB)
    # used by the script itself for its child processes
    parser.add_argument("--child", choices=STAGES, help=argparse.SUPPRESS)
    parser.add_argument("--data-root", help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args)
        return

    sys.stdout.reconfigure(line_buffering=True)  # each line as it comes, also into a file
    work: Path = args.work_dir
    specs = lecture_specs(args.quick)
    chosen = [name for name in args.lectures.split(",") if name] or list(specs)
    stages = [s for s in args.stages.split(",") if s]
    unknown = [n for n in chosen if n not in specs] + [s for s in stages if s not in STAGES]
    if unknown:
        parser.error(f"unknown lecture or stage: {', '.join(unknown)} (lectures: {', '.join(specs)})")
    print(f"work dir: {work}{' (quick mode)' if args.quick else ''}")
    speech: list = []
    videos = {}
    for name in chosen:
        video, how = build_lecture(work, specs[name], speech)
        videos[name] = video
        print(f"lecture {name}: {specs[name].describe()}, H.264 ultrafast + AAC; {video} ({how})")
    classifier, detector = models_in_use(args.classifier, args.detector)
    print(f"frame classifier: {classifier}")
    print(f"cursor detector: {detector}")
    print(f"each stage in a fresh process; peak RSS of that process; limit {args.limit_mb:.0f} MB")
    header = (
        f"{'lecture':<16} {'stage':<14} {'peak RSS':>9} {'stage s':>8} {'x real time':>11} {'rows':>7}  note"
    )
    print(header)
    checks = []
    for name in chosen:
        root = data_root(work, specs[name])
        run_dir = work / "runs" / name
        run_dir.mkdir(parents=True, exist_ok=True)
        for stage in stages:
            arguments = ["--child", stage, "--data-root", str(root), "--run-dir", str(run_dir)]
            arguments += ["--classifier", str(classifier), "--detector", str(detector)]
            peak_mb, _wall_s = run_child(arguments, work / "logs" / f"{name}.{stage}.log")
            result = json.loads((run_dir / f"{stage}.json").read_text())
            speed = result["video_s"] / result["stage_s"] if result["stage_s"] else float("nan")
            failed = [
                r for s, r in zip(result["status"], result.get("reason", []), strict=False) if s == "error"
            ]
            note = f"error: {failed[0]}" if failed else ""
            if stage == "stable_chunks":
                note = note or f"{result['medical']} medical"
            if stage == "transcripts" and not failed:
                note = result["status"][0]
            print(
                f"{name:<16} {stage:<14} {peak_mb:>6.0f} MB {result['stage_s']:>8.1f} {speed:>10.1f}x "
                f"{result['rows']:>7}  {note}",
                flush=True,
            )
            checks.append(Check(f"{name} {stage} peak RSS", peak_mb, args.limit_mb, "{:.0f} MB".format, "<"))
    print()
    print_checks(checks, name_width=max(len(c.name) for c in checks), value_width=8)
    print("rows: videos probed, stable chunks, transcript words, cursor trace points")


if __name__ == "__main__":
    main()
