"""The generated model repository: configs valid for Triton and consistent with the ONNX graph."""

import asyncio
import json
import time

import numpy as np
import onnx
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.grpc.aio as triton_aio
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc
from tritonclient.utils import InferenceServerException

ONNX_TO_TRITON = {onnx.TensorProto.INT64: mc.TYPE_INT64, onnx.TensorProto.FLOAT: mc.TYPE_FP32}


def load_config(repo, name="goemotions"):
    return text_format.Parse((repo / name / "config.pbtxt").read_text(), mc.ModelConfig())


def test_config_matches_the_onnx_graph(exported_repo):
    config = load_config(exported_repo)
    graph = onnx.load(str(exported_repo / "goemotions" / "1" / "model.onnx")).graph
    initializers = {i.name for i in graph.initializer}
    graph_inputs = {i.name: i for i in graph.input if i.name not in initializers}
    graph_outputs = {o.name: o for o in graph.output}
    assert {i.name for i in config.input} == set(graph_inputs) == {"input_ids", "attention_mask"}
    assert {o.name for o in config.output} == set(graph_outputs) == {"logits"}
    assert config.max_batch_size > 0  # first ONNX dim is the batch, not listed in dims
    for tensor in [*config.input, *config.output]:
        onnx_tensor = (graph_inputs | graph_outputs)[tensor.name]
        assert ONNX_TO_TRITON[onnx_tensor.type.tensor_type.elem_type] == tensor.data_type
        onnx_dims = [
            d.dim_value if d.HasField("dim_value") else -1 for d in onnx_tensor.type.tensor_type.shape.dim
        ]
        assert onnx_dims[0] == -1 and onnx_dims[1:] == list(tensor.dims)


def test_config_batches_ragged_inputs_without_a_queue_policy(exported_repo):
    config = load_config(exported_repo)
    assert all(i.allow_ragged_batch for i in config.input)
    assert config.HasField("dynamic_batching")
    # A queue policy makes the bundled Triton 2.51 stall requests for 500 ms (see ServingOptions).
    assert not config.dynamic_batching.HasField("default_queue_policy")
    assert config.instance_group[0].kind == mc.ModelInstanceGroup.KIND_CPU
    labels = (exported_repo / "goemotions" / "labels.txt").read_text().split()
    assert len(labels) == config.output[0].dims[0] == 28


def test_metadata_records_parity_and_checksum(exported_repo):
    meta = json.loads((exported_repo / "goemotions" / "1" / "metadata.json").read_text())
    assert meta["problem_type"] == "multi_label"
    assert meta["export"]["parity"]["max_abs_logit_diff"] <= 1e-4
    assert len(meta["onnx_sha256"]) == 64 and set(meta["thresholds"]) == set(meta["labels"])


def test_model_is_ready_in_triton(triton):
    client = triton_grpc.InferenceServerClient(triton.grpc_url)
    assert client.is_server_ready()
    assert client.is_model_ready("goemotions")
    config = client.get_model_config("goemotions").config
    assert config.backend == "python" and config.max_batch_size == 64


def infer_inputs(ids, mask):
    inputs = [
        triton_grpc.InferInput("input_ids", list(ids.shape), "INT64"),
        triton_grpc.InferInput("attention_mask", list(mask.shape), "INT64"),
    ]
    inputs[0].set_data_from_numpy(ids)
    inputs[1].set_data_from_numpy(mask)
    return inputs


def test_malformed_tensors_get_an_error_and_the_model_keeps_serving(triton):
    client = triton_grpc.InferenceServerClient(triton.grpc_url)
    ids = np.array([[101, 7592, 2088, 102, 0]], dtype=np.int64)
    with pytest.raises(InferenceServerException, match="must be equal 2-D shapes"):
        client.infer("goemotions", infer_inputs(ids, np.ones((1, 4), np.int64)))
    too_long = np.full((1, 600), 1000, dtype=np.int64)
    with pytest.raises(InferenceServerException, match="sequence length"):
        client.infer("goemotions", infer_inputs(too_long, np.ones_like(too_long)))
    ok = client.infer("goemotions", infer_inputs(ids, np.ones_like(ids)))
    assert ok.as_numpy("logits").shape == (1, 28)


def test_python_backend_pads_ragged_batches_like_separate_calls(triton):
    """One request with two padded rows equals two single-row requests (padding is masked)."""
    client = triton_grpc.InferenceServerClient(triton.grpc_url)
    short = np.array([[101, 7592, 102]], dtype=np.int64)
    long = np.array([[101, 7592, 2088, 2003, 2307, 102]], dtype=np.int64)
    a = client.infer("goemotions", infer_inputs(short, np.ones_like(short))).as_numpy("logits")
    b = client.infer("goemotions", infer_inputs(long, np.ones_like(long))).as_numpy("logits")
    padded = np.zeros((2, 6), dtype=np.int64)
    padded[0, :3], padded[1] = short[0], long[0]
    both = client.infer("goemotions", infer_inputs(padded, (padded != 0).astype(np.int64))).as_numpy("logits")
    np.testing.assert_allclose(both, np.vstack([a, b]), atol=1e-4)


def batch_stats(client):
    stats = client.get_inference_statistics("goemotions").model_stats[0]
    return stats.inference_count, stats.execution_count


async def test_dynamic_batcher_combines_requests_of_different_lengths(triton):
    sync_client = triton_grpc.InferenceServerClient(triton.grpc_url)
    inferences_before, executions_before = batch_stats(sync_client)
    client = triton_aio.InferenceServerClient(triton.grpc_url)
    rng = np.random.default_rng(0)

    async def one(length):
        ids = rng.integers(1000, 20000, size=(1, length)).astype(np.int64)
        return await client.infer("goemotions", infer_inputs(ids, np.ones_like(ids)))

    try:
        lengths = [int(n) for n in rng.integers(4, 60, size=64)]
        results = await asyncio.gather(*(one(n) for n in lengths))
    finally:
        await client.close()
    assert all(r.as_numpy("logits").shape == (1, 28) for r in results)
    # Statistics are recorded after each response is sent: wait for the last ones to land.
    deadline = time.monotonic() + 10
    while True:
        inferences, executions = batch_stats(sync_client)
        inferences -= inferences_before
        executions -= executions_before
        if inferences >= 64 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert inferences == 64
    assert executions < inferences / 2, f"{executions} executions for {inferences} inferences: no batching"
