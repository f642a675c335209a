"""Files and folders that appear whole or not at all.

Everything a stage writes goes first to a temporary name of its own beside the target (so two
writers never share one) and is renamed into place when complete. A crash or a full disk leaves the
stored version as it was, plus at most a hidden temporary that the next writer clears away.
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Temporaries are hidden and carry their writer's process id: `.<name>.<pid>-<random>.partial`.
_PARTIAL_SUFFIX = ".partial"


def _temporary_prefix(target: Path) -> str:
    return f".{target.name}.{os.getpid()}-"


def _temporary_path(target: Path) -> Path:
    return target.with_name(f"{_temporary_prefix(target)}{uuid.uuid4().hex[:12]}{_PARTIAL_SUFFIX}")


def _writer_is_gone(temporary: Path, target: Path) -> bool:
    pid = temporary.name[len(f".{target.name}.") :].split("-", 1)[0]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


def clear_abandoned(target: Path) -> None:
    """Remove temporaries of `target` left by writers that died (killed, out of disk)."""
    if not target.parent.is_dir():
        return
    for temporary in target.parent.glob(f".{glob_escape(target.name)}.*{_PARTIAL_SUFFIX}"):
        if _writer_is_gone(temporary, target):
            if temporary.is_dir() and not temporary.is_symlink():
                shutil.rmtree(temporary, ignore_errors=True)
            else:
                temporary.unlink(missing_ok=True)


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


@contextmanager
def replaced_file(target: Path) -> Iterator[Path]:
    """A temporary path to write `target`'s new content to; it replaces `target` when the block ends
    without an error, and is removed when it raises."""
    target.parent.mkdir(parents=True, exist_ok=True)
    clear_abandoned(target)
    temporary = _temporary_path(target)
    # Created as open() would (mode 0666 less the umask), not owner-only as tempfile makes it.
    os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield temporary
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_file(target: Path, content: bytes | str) -> Path:
    """Write `target` atomically (text as UTF-8)."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    with replaced_file(target) as temporary:
        temporary.write_bytes(data)
    return target


@contextmanager
def replaced_folder(target: Path) -> Iterator[Path]:
    """A fresh temporary folder to fill; it replaces the folder `target` when the block ends without
    an error, and is removed when it raises, leaving `target` as it was."""
    target.parent.mkdir(parents=True, exist_ok=True)
    clear_abandoned(target)
    staging = _temporary_path(target)
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    try:
        _swap_in(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _swap_in(staging: Path, target: Path) -> None:
    """Rename `staging` to `target`; a folder already there is moved aside first, then deleted."""
    retired = None
    if target.is_dir() and not target.is_symlink():
        retired = _temporary_path(target)
        target.rename(retired)
    elif target.exists() or target.is_symlink():
        target.unlink()
    staging.rename(target)
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)


def link_or_copy(source: Path, target: Path) -> None:
    """`target` as a hard link to `source` (no bytes copied; files here are replaced, never edited
    in place), or a copy where the file system cannot link."""
    try:
        os.link(source, target)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise
        shutil.copyfile(source, target)
