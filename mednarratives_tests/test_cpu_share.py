"""Steps share the machine's cores: each computes with the cores divided by the steps computing at
once, counted by held seat files, and a dead process's seat no longer counts."""

import os
import signal
import subprocess
import sys
import time

import torch

from mednarratives_assets.asr.engines import AsrSettings
from mednarratives_assets.cpu_share import computing_seat, seats_taken, share_of_cores, threads_in_use

HOLD_A_SEAT = """
import sys, time
from pathlib import Path
from mednarratives_assets.cpu_share import computing_seat
with computing_seat(Path(sys.argv[1])):
    print("seated", flush=True)
    time.sleep(600)
"""


def test_share_of_cores():
    assert share_of_cores(1, cores=2) == 2
    assert share_of_cores(2, cores=2) == 1
    assert share_of_cores(3, cores=2) == 1
    assert share_of_cores(3, cores=16) == 5
    assert share_of_cores(0, cores=4) == 4


def test_a_step_computes_with_its_share_and_a_dead_process_frees_its_seat(tmp_path):
    before = torch.get_num_threads()
    other = subprocess.Popen(
        [sys.executable, "-c", HOLD_A_SEAT, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert other.stdout.readline().strip() == "seated"
        with computing_seat(tmp_path) as threads:
            assert seats_taken(tmp_path) == 2
            assert threads == share_of_cores(2)
            assert torch.get_num_threads() == threads == threads_in_use()
            assert AsrSettings().cpu_threads == threads and AsrSettings(threads=3).cpu_threads == 3
        assert seats_taken(tmp_path) == 1
        os.kill(other.pid, signal.SIGKILL)
        other.wait()
        deadline = time.monotonic() + 10
        while seats_taken(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert seats_taken(tmp_path) == 0
        assert not list(tmp_path.glob("*.seat"))  # the dead process's file is cleared
        with computing_seat(tmp_path) as threads:
            assert threads == share_of_cores(1)
    finally:
        other.kill()
        other.wait()
        torch.set_num_threads(before)
