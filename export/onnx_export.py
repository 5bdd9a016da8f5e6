"""ONNX graphs of a classifier: fp32 export, ONNX Runtime optimisation and an fp16 variant.

All graph rewriting is done by ONNX Runtime's own tooling (the transformer optimizer and
the float16 converter); nothing here edits nodes by hand. The int8 graphs that were tried
for the CPU flavour, and why none is served, are in ``bench/cpu_graphs.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from train.minibatches import inference_batches

log = logging.getLogger(__name__)

OUTPUT_NAME = "logits"
OPSET = 17


def export_module(model: torch.nn.Module, input_names: Sequence[str], path: Path) -> None:
    """Export a module whose forward takes ``input_names`` and returns logits."""
    model.eval()
    example_ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]], dtype=torch.long)
    examples = {
        "input_ids": example_ids,
        "attention_mask": (example_ids != 0).long(),
        "token_type_ids": torch.zeros_like(example_ids),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    # The TorchScript exporter gives a compact graph that ONNX Runtime's BERT fusions
    # recognise; both variable dimensions are named.
    torch.onnx.export(
        model,
        tuple(examples[name] for name in input_names),
        str(path),
        input_names=list(input_names),
        output_names=[OUTPUT_NAME],
        dynamic_axes={**{n: {0: "batch", 1: "sequence"} for n in input_names}, OUTPUT_NAME: {0: "batch"}},
        opset_version=OPSET,
        do_constant_folding=True,
        dynamo=False,
    )


def optimize(src: Path, dst: Path, model_type: str, num_heads: int, hidden_size: int) -> dict[str, int]:
    """ONNX Runtime transformer fusions (attention, layer norm, GELU); returns fused-op counts."""
    from onnxruntime.transformers.optimizer import optimize_model

    optimized = optimize_model(str(src), model_type=model_type, num_heads=num_heads, hidden_size=hidden_size)
    optimized.save_model_to_file(str(dst))
    return {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}


def convert_fp16(src: Path, dst: Path) -> None:
    """fp16 weights and activations for GPUs; inputs and logits keep their types."""
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = OnnxModel(onnx.load(str(src)))
    model.convert_float_to_float16(keep_io_types=True)
    model.save_model_to_file(str(dst))


def session(path: Path, threads: int = 0) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_logits(
    sess: ort.InferenceSession, token_ids: Sequence[Sequence[int]], pad_id: int, batch_size: int = 64
) -> np.ndarray:
    """Logits for every sequence, in input order."""
    names = {i.name for i in sess.get_inputs()}
    out: np.ndarray | None = None
    for batch in inference_batches(token_ids, batch_size, pad_id):
        index, ids, mask = batch.index, batch.input_ids.numpy(), batch.attention_mask.numpy()
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in names:
            feed["token_type_ids"] = np.zeros_like(ids)
        logits = sess.run([OUTPUT_NAME], feed)[0].astype(np.float32)
        if out is None:
            out = np.zeros((len(token_ids), logits.shape[1]), dtype=np.float32)
        out[index] = logits
    return out
