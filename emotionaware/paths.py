"""Where the project's files live: the one home of every path constant.

Datasets are read from ``../shared/data`` next to the checkout by default (never copied into
the repository); every command that reads them takes ``--data-dir`` to point elsewhere.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = ROOT / "models"  # committed trained artifacts, one folder per model
MODEL_REPOSITORY = ROOT / "model_repository"  # Triton repository of the CPU flavour (generated)
GPU_MODEL_REPOSITORY = ROOT / "model_repository_gpu"  # the GPU flavour (generated)
DEFAULT_DATA_DIR = ROOT.parent / "shared" / "data"
