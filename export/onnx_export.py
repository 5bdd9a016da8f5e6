"""ONNX graphs of a classifier: fp32 export, ONNX Runtime optimisation, int8 and fp16 variants.

All graph rewriting is done by ONNX Runtime's own tooling (the transformer optimizer and
dynamic quantization); nothing here edits nodes by hand.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from train.batching import inference_batches

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


def quantize_int8(src: Path, dst: Path) -> None:
    """Dynamic int8 with per-channel weights, for CPUs.

    Measured on GoEmotions dev: per-tensor weights cost 1.3 macro-F1 points, per-channel
    1.0 at the fp32 thresholds and none with the graph's own dev-tuned thresholds (see
    export/parity.py); keeping the FFN MatMuls in fp32 gained nothing once thresholds were
    re-tuned and cost about a third of the speed-up.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(src),
        str(dst),
        weight_type=QuantType.QInt8,
        per_channel=True,
        # Fused contrib ops defeat shape inference; their outputs are float.
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


def convert_fp16(src: Path, dst: Path) -> None:
    """fp16 weights and activations for GPUs; inputs and logits keep their types."""
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = OnnxModel(onnx.load(str(src)))
    model.convert_float_to_float16(keep_io_types=True)
    model.save_model_to_file(str(dst))


def graph_inputs(path: Path) -> tuple[str, ...]:
    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    return tuple(i.name for i in graph.input if i.name not in initializers)


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
