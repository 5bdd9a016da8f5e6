"""Shared fixtures. Tiers are folders: unit/ (no network), grpc/ (in-process server on port 0),
triton/ (a real Triton server started on free loopback ports), pipeline/ (training and the
committed artifact, small real runs)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TIERS = {"unit": "unit", "grpc": "grpc", "triton": "triton", "pipeline": "slow", "helm": "helm"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        tier = Path(item.fspath).parent.name
        if tier in TIERS:
            item.add_marker(TIERS[tier])


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = Path(os.environ.get("EMOTIONAWARE_DATA_DIR", ROOT.parent / "shared" / "data"))
    if not (path / "goemotions").is_dir():
        pytest.fail(f"datasets not found at {path}; set EMOTIONAWARE_DATA_DIR")
    return path
