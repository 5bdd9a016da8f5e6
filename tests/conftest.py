"""Shared fixtures. Tiers are folders: unit/ (no network), grpc/ (in-process server on port 0),
triton/ (a real Triton server started on free loopback ports), pipeline/ (training and the
committed artifact, small real runs)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from emotionaware.paths import DEFAULT_DATA_DIR

TIERS = {"unit": "unit", "grpc": "grpc", "triton": "triton", "pipeline": "slow", "helm": "helm"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        tier = Path(item.fspath).parent.name
        if tier in TIERS:
            item.add_marker(TIERS[tier])


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = Path(os.environ.get("EMOTIONAWARE_DATA_DIR", DEFAULT_DATA_DIR))
    if not (path / "goemotions").is_dir():
        pytest.fail(f"datasets not found at {path}; set EMOTIONAWARE_DATA_DIR")
    return path


@dataclass(frozen=True)
class Exports:
    repo: Path
    gpu_repo: Path
    checkpoint: Path


@pytest.fixture(scope="session")
def exports(tmp_path_factory, data_dir) -> Exports:
    """Export the committed artifacts and a user checkpoint (parity-checked) into fresh repositories.

    Shared by the gRPC tier (embedded backend) and the Triton tier, so both serve the same graphs.
    """
    from emotionaware.artifact import ServingRecord
    from export.cli import MODELS_DIR, export_source
    from export.source import from_artifact, from_hf_checkpoint
    from export.triton_repo import CpuOptions
    from tests.helpers import make_user_checkpoint

    # EMOTIONAWARE_TEST_EXPORTS=DIR keeps the exports in DIR and reuses them on later runs
    # (for iterating on the gateway locally; CI always exports afresh).
    reuse = os.environ.get("EMOTIONAWARE_TEST_EXPORTS")
    root = Path(reuse) if reuse else tmp_path_factory.mktemp("exports")
    if reuse and (root / "done").exists():
        return Exports(root / "model_repository", root / "model_repository_gpu", root / "user-checkpoint")
    repo, gpu_repo = root / "model_repository", root / "model_repository_gpu"
    checkpoint = make_user_checkpoint(root / "user-checkpoint")
    # The committed artifacts are verified against their serving.json, as `make export` does.
    cpu = CpuOptions(intra_op_threads=2)
    sources = [
        (from_artifact(MODELS_DIR / "goemotions"), ServingRecord.load(MODELS_DIR / "goemotions")),
        (from_hf_checkpoint(checkpoint, "tiny-user-model"), None),
        (from_artifact(MODELS_DIR / "conversation"), ServingRecord.load(MODELS_DIR / "conversation")),
        (from_artifact(MODELS_DIR / "poems"), ServingRecord.load(MODELS_DIR / "poems")),
    ]
    for source, record in sources:
        export_source(source, repo, gpu_repo, data_dir, parity_texts=128, cpu=cpu, record=record)
    if reuse:
        (root / "done").touch()
    return Exports(repo, gpu_repo, checkpoint)


@pytest.fixture(scope="session")
def exported_repo(exports) -> Path:
    return exports.repo
