"""The export refuses to write a model whose ONNX graph disagrees with its PyTorch source."""

import copy
import dataclasses

import pytest
import torch

from export.cli import ParityFailed, export_source
from export.source import from_hf_checkpoint
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
