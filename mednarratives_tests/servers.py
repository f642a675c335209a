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


def _as_postgres_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run its tools as the `postgres` user."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextmanager
def running_postgres(database: str) -> Iterator[str]:
    """A throwaway PostgreSQL server on a free loopback port with one empty database; yields its
    SQLAlchemy URL (psycopg2 driver). Stopped by its pid at the end, pass or fail."""
    import pwd
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="mednarratives-pg-"))  # under /tmp: `postgres` must reach it
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(folder, user.pw_uid, user.pw_gid)
    port = free_port()
    data, log = folder / "data", folder / "server.log"
    try:
        subprocess.run(
            _as_postgres_user(["initdb", "-D", str(data), "-A", "trust", "-U", "postgres"]),
            check=True,
            capture_output=True,
        )
        subprocess.run(
            _as_postgres_user(
                [
                    "pg_ctl",
                    "-D",
                    str(data),
                    "-l",
                    str(log),
                    "-w",
                    "-o",
                    f"-h 127.0.0.1 -p {port} -k {folder}",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )
        try:
            subprocess.run(
                [
                    "psql",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-U",
                    "postgres",
                    "-c",
                    f"create database {database}",
                ],
                check=True,
                capture_output=True,
            )
            yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/{database}"
        finally:
            pid = int((data / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGINT)  # PostgreSQL's fast shutdown
            wait_until(lambda: not _alive(pid), 60, "PostgreSQL to stop", poll_s=0.2)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def running_redis(log_path: Path) -> Iterator[str]:
    """redis-server on a free loopback port, without persistence; yields its URL."""
    import redis

    port = free_port()
    with log_path.open("w") as log:
        process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = f"redis://127.0.0.1:{port}/0"

        def up() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"redis-server exited: {log_path.read_text()[-2000:]}")
            try:
                return redis.Redis.from_url(url).ping()
            except redis.ConnectionError:
                return False

        try:
            wait_until(up, 30, "redis-server", poll_s=0.2)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def answers_http(url: str) -> bool:
    """True once a server answers GET / at `url` with a success status."""
    import requests

    try:
        return requests.get(url, timeout=2).ok
    except requests.ConnectionError:
        return False
