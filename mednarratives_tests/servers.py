"""Servers the integration tests start as a user would: on a free loopback port, stopped with Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from mednarratives_assets.settings import REPO_ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition, timeout_s: float, what: str, poll_s: float = 1.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


@contextmanager
def running_server(
    command: list[str], env: dict, log_path: Path, is_up: Callable[[str], object], poll_s: float = 1.0
) -> Iterator[str]:
    """Start `command` (which takes its port from `{port}`) in the repository, wait until `is_up(url)`
    is true, yield the URL, then stop its whole process group as Ctrl-C would."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [part.format(port=port) for part in command],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def up():
            if process.poll() is not None:
                raise AssertionError(f"{command[2:4]} exited: {log_path.read_text()[-3000:]}")
            return is_up(url)

        try:
            wait_until(up, 180, " ".join(command[2:4]), poll_s=poll_s)
            yield url
        finally:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
