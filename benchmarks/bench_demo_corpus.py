"""How fast the demo corpus generates, and what it holds.

    python benchmarks/bench_demo_corpus.py [--channels 3 --videos-per-channel 2 --seconds 60 --workers 2]

Generates into a temporary data root (nothing under data/ is touched) and prints the wall time,
the real-time factor, and per-lecture counts from the ground truth.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from mednarratives_assets.demo.corpus import DemoCorpusConfig, generate_corpus
from mednarratives_assets.evaluation.report import peak_rss_mb
from mednarratives_assets.settings import DataLayout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--videos-per-channel", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--images", help="a folder with metadata.jsonl, such as ../shared/datasets/medpix")
    args = parser.parse_args()
    config = DemoCorpusConfig(
        channels=args.channels,
        videos_per_channel=args.videos_per_channel,
        seconds=args.seconds,
        images_dir=args.images,
    )
    with tempfile.TemporaryDirectory() as tmp:
        layout = DataLayout(Path(tmp) / "data", Path(tmp) / "data" / "db.duckdb")
        started = time.perf_counter()
        entries = generate_corpus(layout, config, workers=args.workers, log=lambda _: None)
        elapsed = time.perf_counter() - started
        video_s = sum(e["duration_s"] for e in entries)
        size = sum((layout.data_root / e["video"]).stat().st_size for e in entries)
        print(
            f"{len(entries)} lectures, {video_s:.0f} s of 1280x720 video, {size / 1e6:.1f} MB, "
            f"generated in {elapsed:.1f} s with {args.workers} workers ({video_s / elapsed:.1f}x real time)"
        )
        print(
            f"{'lecture':32} {'seconds':>7} {'chunks':>6} {'medical':>7} {'words':>5} {'rois':>4} "
            f"{'cursor shown':>12} {'cursor':>16}"
        )
        for entry in entries:
            truth = json.loads((layout.data_root / entry["truth"]).read_text())
            shown = sum(truth["cursor"]["visible"]) / truth["n_frames"]
            name = f"{entry['channel']}/{entry['video_id']}"
            style = f"{truth['cursor']['shape']}/{truth['cursor']['theme']}"
            print(
                f"{name:32} {truth['duration_s']:7.1f} {len(truth['chunks']):6d} "
                f"{sum(c['is_medical'] for c in truth['chunks']):7d} {len(truth['words']):5d} "
                f"{len(truth['rois']):4d} {shown:12.0%} {style:>16}"
            )
    peak_mb, peak_worker_mb = peak_rss_mb(), peak_rss_mb(children=True)
    print(f"peak RSS: {peak_mb:.0f} MB (this process), {peak_worker_mb:.0f} MB (largest worker)")


if __name__ == "__main__":
    main()
