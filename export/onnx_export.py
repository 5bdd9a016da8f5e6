"""PyTorch -> ONNX conversion and the parity check that guards it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from train.batching import inference_batches

log = logging.getLogger(__name__)

INPUT_NAMES = ("input_ids", "attention_mask")
OUTPUT_NAME = "logits"
OPSET = 17


def export_onnx(model: torch.nn.Module, path: Path) -> None:
    """Export with dynamic batch and sequence axes and the tensor names Triton configs use."""
    model.eval()
    example_ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]], dtype=torch.long)
    example_mask = (example_ids != 0).long()
    path.parent.mkdir(parents=True, exist_ok=True)
    # The TorchScript exporter gives a compact graph that ONNX Runtime's BERT fusions
    # recognise; dynamic axes name both variable dimensions.
    torch.onnx.export(
        model,
        (example_ids, example_mask),
        str(path),
        input_names=list(INPUT_NAMES),
        output_names=[OUTPUT_NAME],
        dynamic_axes={
            "input_ids": {0: "batch", 1: "sequence"},
            "attention_mask": {0: "batch", 1: "sequence"},
            OUTPUT_NAME: {0: "batch"},
        },
        opset_version=OPSET,
        do_constant_folding=True,
        dynamo=False,
    )


@dataclass(frozen=True)
class ParityReport:
    """Agreement between the ONNX graph and the PyTorch model on the same token ids."""

    texts: int
    max_abs_logit_diff: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.max_abs_logit_diff <= self.tolerance


def onnx_logits(session: ort.InferenceSession, token_ids: Sequence[Sequence[int]], pad_id: int) -> np.ndarray:
    out = np.zeros((len(token_ids), session.get_outputs()[0].shape[-1]), dtype=np.float32)
    for batch in inference_batches(token_ids, 64, pad_id):
        feed = {"input_ids": batch.input_ids.numpy(), "attention_mask": batch.attention_mask.numpy()}
        out[batch.index] = session.run([OUTPUT_NAME], feed)[0]
    return out


def check_parity(
    model: torch.nn.Module,
    onnx_path: Path,
    token_ids: Sequence[Sequence[int]],
    pad_id: int,
    tolerance: float = 1e-4,
) -> ParityReport:
    """Max absolute logit difference between ONNX Runtime and PyTorch on real texts."""
    from train.predict import predict_logits

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    reference = predict_logits(model, token_ids, pad_id)
    diff = float(np.abs(onnx_logits(session, token_ids, pad_id) - reference).max())
    return ParityReport(len(token_ids), diff, tolerance)
