"""Time the `videos` probe and the new-video sensor's scan over a channel of N video files.

    python benchmarks/bench_ingest.py [--files 200] [--seconds 10] [--distinct 10]

Encodes `--distinct` 720p30 H.264+AAC clips, copies them to `--files` files in one channel of a
temporary data root, then prints the probe's throughput (files/s, ms per file, video hours per
second), the scan's time for those files, cold and warm, and the peak RSS.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from mednarratives_assets.channels import scan_channels
from mednarratives_assets.evaluation.report import peak_rss_mb
from mednarratives_assets.mp4 import write_mp4
from mednarratives_assets.stages.videos import probe_channel


def lecture_clip(path: Path, seconds: float, seed: int) -> Path:
    """A slide-like 1280x720 clip: a static background with a moving cursor-sized square."""
    rng = np.random.default_rng(seed)
    background = np.repeat(rng.integers(0, 255, (9, 16, 3), dtype=np.uint8), 80, axis=0).repeat(80, axis=1)
    fps = 30

    def frames():
        for i in range(int(seconds * fps)):
            frame = background.copy()
            x, y = 200 + (i * 11) % 800, 200 + (i * 5) % 300
            frame[y : y + 24, x : x + 16] = 255
            yield frame

    t = np.arange(int(seconds * 16_000)) / 16_000
    voice = 0.2 * np.sin(2 * np.pi * (150 + 50 * np.sin(t)) * t)
    return write_mp4(path, frames(), fps=fps, audio=voice, sample_rate=16_000)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each clip")
    parser.add_argument("--distinct", type=int, default=10, help="distinct clips to encode")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data_root = Path(tmp) / "data"
        channel_dir = data_root / "videos" / "bench"
        started = time.perf_counter()
        clips = [lecture_clip(Path(tmp) / f"clip_{i}.mp4", args.seconds, i) for i in range(args.distinct)]
        encode_s = time.perf_counter() - started
        print(f"encoded {len(clips)} clips of {args.seconds:.0f} s at 1280x720 in {encode_s:.1f} s")
        channel_dir.mkdir(parents=True)
        for i in range(args.files):
            shutil.copy(clips[i % len(clips)], channel_dir / f"lecture_{i:04d}.mp4")
        total_mb = sum(p.stat().st_size for p in channel_dir.iterdir()) / 1e6

        probe_times = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            frame = probe_channel(data_root, "bench")
            probe_times.append(time.perf_counter() - started)
        assert frame.height == args.files and (frame["status"] == "ok").all()
        probe_s = statistics.median(probe_times)
        video_hours = frame["duration_s"].sum() / 3600

        scan_times = []
        for _ in range(args.repeats * 5):
            started = time.perf_counter()
            scan = scan_channels(data_root / "videos")
            scan_times.append(time.perf_counter() - started)
        assert list(scan.valid) == ["bench"]

        print(f"files: {args.files} ({total_mb:.0f} MB, {video_hours:.2f} h of video)")
        print(
            f"probe (PyAV demux + first-frame decode + sha256), median of {args.repeats}: {probe_s:.2f} s"
            f" = {args.files / probe_s:.0f} files/s, {1000 * probe_s / args.files:.1f} ms/file,"
            f" {total_mb / probe_s:.0f} MB/s, {video_hours * 3600 / probe_s:.0f}x real time"
        )
        print(
            f"sensor scan (name, size, mtime fingerprint):"
            f" median {1000 * statistics.median(scan_times):.1f} ms,"
            f" max {1000 * max(scan_times):.1f} ms for {args.files} files"
        )
    print(f"peak RSS: {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
