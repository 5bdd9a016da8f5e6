"""bench/cpu_graphs.py: the one-ulp nudge that measures whether a graph's scores can depend on the CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from bench.cpu_graphs import nudged, weight_matmuls

pytestmark = pytest.mark.unit


def _graph(path: Path, quantized: bool) -> Path:
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.normal(size=(8, 4)).astype(np.float32), "w")
    nodes, inits = [], [weight]
    source = "x"
    if quantized:
        inits += [
            numpy_helper.from_array(np.array(0.02, np.float32), "scale"),
            numpy_helper.from_array(np.array(128, np.uint8), "zero"),
        ]
        nodes += [
            helper.make_node("QuantizeLinear", ["x", "scale", "zero"], ["xq"], name="quant"),
            helper.make_node("DequantizeLinear", ["xq", "scale", "zero"], ["xd"], name="dequant"),
        ]
        source = "xd"
    nodes.append(helper.make_node("MatMul", [source, "w"], ["y"], name="/layer/output/dense/MatMul"))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["y"], {"x": x})[0]


def test_fp32_graph_nudges_matmul_inputs_by_one_ulp(tmp_path: Path) -> None:
    src = _graph(tmp_path / "fp32.onnx", quantized=False)
    x = np.random.default_rng(1).normal(size=(16, 8)).astype(np.float32)
    base = _run(src, x)
    up = _run(nudged(src, tmp_path / "up.onnx", 1), x)
    down = _run(nudged(src, tmp_path / "down.onnx", -1), x)
    # Moved, but by about one part in 2**23 of the output's scale: the inputs moved, not the weight.
    for moved in (up, down):
        diff = np.abs(moved - base)
        assert diff.max() > 0
        assert diff.max() <= 8 * 2.0**-23 * np.abs(base).max()
    assert weight_matmuls(src) == ["/layer/output/dense/MatMul"]


def test_quantized_graph_nudges_only_the_quantizer(tmp_path: Path) -> None:
    src = _graph(tmp_path / "q.onnx", quantized=True)
    graph = onnx.load(str(nudged(src, tmp_path / "q-up.onnx", 1))).graph
    muls = [n for n in graph.node if n.op_type == "Mul"]
    assert len(muls) == 1 and muls[0].input[0] == "x"
    assert next(n for n in graph.node if n.op_type == "QuantizeLinear").input[0] == muls[0].output[0]
    # The MatMul after the dequantizer is left alone (a Mul there would stop ORT fusing it).
    assert next(n for n in graph.node if n.op_type == "MatMul").input[0] == "xd"
    # Values within an ulp of halfway between two quantization steps: nudged up, some of them
    # round to the next step, and the outputs move by a whole step (the effect this measures).
    halfway = (np.arange(-100, 100, dtype=np.float32) + np.float32(0.5)) * np.float32(0.02)
    x = halfway.reshape(-1, 8)
    moved = np.abs(_run(src, x) - _run(tmp_path / "q-up.onnx", x))
    assert moved.max() > 1e-3
