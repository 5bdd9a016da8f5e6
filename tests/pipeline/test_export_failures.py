"""The export refuses to write a model whose graph disagrees with its source or its committed record."""

import copy
import dataclasses
import json
import shutil

import pytest
import torch

from emotionaware.artifact import SERVING, THRESHOLDS, ServingRecord
from export.cli import MODELS_DIR, ParityFailed, export_source
from export.source import from_artifact, from_hf_checkpoint
from tests.helpers import make_user_checkpoint


def test_a_graph_that_disagrees_with_pytorch_fails_the_export_loudly(tmp_path, data_dir):
    source = from_hf_checkpoint(make_user_checkpoint(tmp_path / "ckpt"), "tiny")
    drifted = copy.deepcopy(source.model)
    with torch.no_grad():
        drifted.model.classifier.bias.add_(0.01)  # the reference no longer matches the exported graph
    bad = dataclasses.replace(source, model=drifted)
    repo, gpu_repo = tmp_path / "repo", tmp_path / "gpu"
    with pytest.raises(ParityFailed, match="fp32 ONNX vs PyTorch"):
        export_source(bad, repo, gpu_repo, data_dir, parity_texts=64)
    assert not repo.exists() and not gpu_repo.exists()


def test_an_export_whose_served_graph_misses_its_record_fails_and_says_why(tmp_path, data_dir):
    """Thresholds and dev metric are part of the committed model: verified by every export, never re-derived."""
    artifact = tmp_path / "goemotions"
    shutil.copytree(MODELS_DIR / "goemotions", artifact)
    record = ServingRecord.load(artifact)
    (artifact / SERVING).write_text(dataclasses.replace(record, dev=record.dev + 0.01).to_json())
    thresholds = json.loads((artifact / THRESHOLDS).read_text())
    thresholds["gratitude"] += 0.1  # no longer what tuning on dev gives
    (artifact / THRESHOLDS).write_text(json.dumps(thresholds))
    repo = tmp_path / "repo"
    with pytest.raises(ParityFailed) as failure:
        export_source(from_artifact(artifact), repo, None, data_dir, parity_texts=32,
                      record=ServingRecord.load(artifact))  # fmt: skip
    message = str(failure.value)
    assert f"served fp32: dev macro-F1 vs committed {record.dev + 0.01:.4f}" in message
    assert "dev-tuned thresholds vs committed: max |diff|" in message
    assert not repo.exists()
