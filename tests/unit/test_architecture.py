"""The house as drawn (docs/architecture.md): import contracts hold, and break on a bad import."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp

from emotionaware.paths import ROOT

PACKAGES = ("emotionaware", "train", "export", "gateway", "launcher", "client", "bench")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(root / "pyproject.toml")],
        cwd=root,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )


def test_the_contracts_hold():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 kept, 0 broken" in result.stdout


def test_a_forbidden_import_breaks_the_lint(tmp_path):
    """The gateway importing training code is what `make lint` must refuse."""
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "results")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "gateway" / "shortcut.py").write_text(
        "from train.metrics import tune_thresholds  # noqa: F401\n"
    )
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "The gateway serves without training, export or launch code BROKEN" in result.stdout
    assert "gateway.shortcut -> train.metrics" in result.stdout


def test_no_module_imports_itself_through_others():
    graph = grimp.build_graph(*PACKAGES, include_external_packages=False)
    cycles = sorted(
        (importer, imported)
        for importer in graph.modules
        for imported in graph.find_modules_directly_imported_by(importer)
        if graph.find_shortest_chain(importer=imported, imported=importer)
    )
    assert cycles == []
