"""The package's layering, stated as code: who may import whom.

Layers, from the bottom: the shared helpers at the package top (tables, hashing, domains, video
frames, asr, llm, ...); `synthetic` (generators of synthetic material); `stages` (plain functions, no
Dagster); `default_models` (the trained models that ship, and how they were trained, from the
stages); `defs` (the thin Dagster wiring), with `cluster` (the wiring only the cluster profile
adds); `definitions`. Beside them: `evaluation` scores stage output against ground truth, and
`demo` makes the demo corpus. Only `cli.py` puts them together.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "mednarratives_assets"
PACKAGE_DIR = Path(__file__).resolve().parents[1] / PACKAGE
# Training a model needs generated frames and crops: these stages alone may import `synthetic`.
TRAINING_STAGES = {"stages.frame_classifier", "stages.cursor_detector"}
PARTS = (
    "synthetic",
    "stages",
    "default_models",
    "defs",
    "cluster",
    "evaluation",
    "demo",
    "definitions",
    "cli",
)
ALLOWED = {
    "helpers": {"helpers"},
    "synthetic": {"helpers", "synthetic"},
    "stages": {"helpers", "stages"},
    "default_models": {"helpers", "stages", "default_models"},
    "defs": {"helpers", "stages", "default_models", "defs"},
    "cluster": {"helpers", "defs", "cluster"},
    "definitions": {"helpers", "defs", "cluster"},
    "evaluation": {"helpers", "stages", "evaluation"},
    # The demo writes its ground truth in the format evaluation reads.
    "demo": {"helpers", "synthetic", "evaluation", "demo"},
    "cli": set(PARTS) | {"helpers"},
}


def part_of(module: str) -> str:
    """`stages.boxes` -> `stages`; a module at the package top (or in `asr`, `llm`) is a shared helper."""
    head = module.split(".")[0]
    return head if head in PARTS else "helpers"


def imported_modules(path: Path, package_dir: Path) -> set[str]:
    """Every module of the package that `path` imports, at the top or inside a function."""
    found = set()
    here = path.relative_to(package_dir).with_suffix("").parts
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = ".".join([PACKAGE, *here[: len(here) - node.level]])
                names = [f"{base}.{node.module}" if node.module else base]
            else:
                names = [node.module or ""]
            if names[0] == PACKAGE:  # `from mednarratives_assets import cli`
                names = [f"{PACKAGE}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {name.removeprefix(f"{PACKAGE}.") for name in names if name.startswith(f"{PACKAGE}.")}
    return found


def layering_violations(package_dir: Path) -> list[str]:
    violations = []
    for path in sorted(package_dir.rglob("*.py")):
        module = ".".join(path.relative_to(package_dir).with_suffix("").parts).removesuffix(".__init__")
        allowed = set(ALLOWED[part_of(module)])
        if module in TRAINING_STAGES:
            allowed.add("synthetic")
        for target in sorted(imported_modules(path, package_dir)):
            if part_of(target) not in allowed:
                violations.append(f"{module} imports {target}")
    return violations


def test_the_package_keeps_its_layers():
    assert layering_violations(PACKAGE_DIR) == []


def test_only_the_cli_imports_the_demo():
    importers = {
        ".".join(path.relative_to(PACKAGE_DIR).with_suffix("").parts)
        for path in PACKAGE_DIR.rglob("*.py")
        if not path.is_relative_to(PACKAGE_DIR / "demo")
        and any(part_of(m) == "demo" for m in imported_modules(path, PACKAGE_DIR))
    }
    assert importers <= {"cli"}


@pytest.mark.parametrize(
    ("module", "source", "violation"),
    [
        ("stages/boxes.py", "from mednarratives_assets.demo import lecture", "stages.boxes imports demo"),
        ("stages/boxes.py", "from ..synthetic.pointers import paste_sprite", "imports synthetic.pointers"),
        (
            "stages/narratives.py",
            "def f():\n    import mednarratives_assets.defs.boxes",
            "imports defs.boxes",
        ),
        ("tables.py", "from mednarratives_assets.stages.boxes import x", "tables imports stages.boxes"),
        ("synthetic/slides.py", "from mednarratives_assets.stages import boxes", "imports stages"),
        ("defs/boxes.py", "from mednarratives_assets import cli", "defs.boxes imports cli"),
        ("evaluation/x.py", "from mednarratives_assets.demo.corpus import y", "imports demo.corpus"),
    ],
)
def test_a_broken_rule_is_reported(tmp_path, module, source, violation):
    package = tmp_path / PACKAGE
    for allowed in ("stages/cursor_detector.py", "defs/boxes.py", "cli.py"):
        (package / allowed).parent.mkdir(parents=True, exist_ok=True)
        (package / allowed).write_text("from mednarratives_assets.tables import grouped\n")
    (package / "stages" / "cursor_detector.py").write_text("from ..synthetic.cursor_crops import CROP_PX\n")
    (package / module).parent.mkdir(parents=True, exist_ok=True)
    (package / module).write_text(source + "\n")
    violations = layering_violations(package)
    assert len(violations) == 1 and violation in violations[0]
