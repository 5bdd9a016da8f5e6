"""The generated model repository: configs valid for Triton and consistent with the ONNX graph."""

import asyncio
import json
import subprocess
import time

import numpy as np
import onnx
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.grpc.aio as triton_aio
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc
from tritonclient.utils import InferenceServerException

from emotionaware.artifact import ServingRecord, load_thresholds
from emotionaware.paths import ROOT
from export.cli import MODELS_DIR
from export.source import sha256_file

ONNX_TO_TRITON = {onnx.TensorProto.INT64: mc.TYPE_INT64, onnx.TensorProto.FLOAT: mc.TYPE_FP32}


MODELS = ("goemotions", "tiny-user-model")
ARTIFACTS = ("goemotions", "conversation", "poems")


def load_config(repo, name="goemotions", file="config.pbtxt"):
    return text_format.Parse((repo / name / file).read_text(), mc.ModelConfig())


def assert_matches_graph(config, graph_path):
    graph = onnx.load(str(graph_path), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    graph_inputs = {i.name: i for i in graph.input if i.name not in initializers}
    graph_outputs = {o.name: o for o in graph.output}
    assert {i.name for i in config.input} == set(graph_inputs)
    assert {o.name for o in config.output} == set(graph_outputs) == {"logits"}
    assert config.max_batch_size > 0  # the first ONNX dim is the batch, not listed in dims
    for tensor in [*config.input, *config.output]:
        onnx_tensor = (graph_inputs | graph_outputs)[tensor.name]
        assert ONNX_TO_TRITON[onnx_tensor.type.tensor_type.elem_type] == tensor.data_type
        dims = [
            d.dim_value if d.HasField("dim_value") else -1 for d in onnx_tensor.type.tensor_type.shape.dim
        ]
        assert dims[0] == -1 and dims[1:] == list(tensor.dims)


@pytest.mark.parametrize(
    ("name", "served"), [("goemotions", "model.onnx"), ("tiny-user-model", "model.onnx")]
)
def test_cpu_config_matches_the_graph_it_serves(exported_repo, name, served):
    config = load_config(exported_repo, name)
    assert config.parameters["onnx_file"].string_value == served
    assert_matches_graph(config, exported_repo / name / "1" / served)
    assert_matches_graph(config, exported_repo / name / "1" / "model.onnx")


def test_token_type_ids_only_where_the_architecture_uses_them(exported_repo):
    assert [i.name for i in load_config(exported_repo).input] == ["input_ids", "attention_mask"]
    user = load_config(exported_repo, "tiny-user-model")
    assert [i.name for i in user.input] == ["input_ids", "attention_mask", "token_type_ids"]


def test_cpu_config_batches_ragged_inputs_without_a_queue_policy(exported_repo):
    config = load_config(exported_repo)
    assert config.backend == "python" and all(i.allow_ragged_batch for i in config.input)
    assert config.HasField("dynamic_batching")
    # A queue policy makes the bundled Triton 2.51 stall requests for 500 ms (see CpuOptions).
    assert not config.dynamic_batching.HasField("default_queue_policy")
    assert config.instance_group[0].kind == mc.ModelInstanceGroup.KIND_CPU
    assert config.version_policy.latest.num_versions == 1
    assert [w.inputs["input_ids"].dims[0] for w in config.model_warmup] == [16, 32, 64, 128]
    labels = (exported_repo / "goemotions" / "labels.txt").read_text().split()
    assert len(labels) == config.output[0].dims[0] == 28


@pytest.mark.parametrize("name", MODELS)
def test_gpu_configs_are_valid_and_match_their_graphs(exports, name):
    onnx_config = load_config(exports.gpu_repo, name)
    plan_config = load_config(exports.gpu_repo, name, "config.plan.pbtxt")
    version_dir = exports.gpu_repo / name / "1"
    assert onnx_config.platform == "onnxruntime_onnx" and plan_config.platform == "tensorrt_plan"
    assert_matches_graph(onnx_config, version_dir / onnx_config.default_model_filename)
    assert_matches_graph(onnx_config, version_dir / "model.fp16.onnx")
    assert onnx_config.instance_group[0].kind == mc.ModelInstanceGroup.KIND_GPU
    assert not any(i.allow_ragged_batch for i in onnx_config.input)  # callers pad to length buckets
    cpu_fallback = load_config(exports.gpu_repo, name, "configs/cpu.pbtxt")
    assert cpu_fallback.instance_group[0].kind == mc.ModelInstanceGroup.KIND_CPU
    assert not cpu_fallback.HasField("optimization")
    assert_matches_graph(cpu_fallback, version_dir / cpu_fallback.default_model_filename)
    policy = onnx_config.dynamic_batching.default_queue_policy
    assert policy.max_queue_size > 0 and policy.default_timeout_microseconds > 0
    assert policy.timeout_action == mc.ModelQueuePolicy.REJECT and policy.allow_timeout_override


def parse_shapes(text):
    return {
        name: tuple(int(d) for d in dims.split("x")) for name, dims in (p.split(":") for p in text.split(","))
    }


def test_tensorrt_profile_covers_every_length_bucket_and_batch_size(exports):
    config = load_config(exports.gpu_repo)
    (accelerator,) = config.optimization.execution_accelerators.gpu_execution_accelerator
    params = accelerator.parameters
    assert accelerator.name == "tensorrt" and params["precision_mode"] == "FP16"
    assert params["trt_engine_cache_enable"] == "1" and params["trt_engine_cache_path"].startswith("/")
    low, high = parse_shapes(params["trt_profile_min_shapes"]), parse_shapes(params["trt_profile_max_shapes"])
    meta = json.loads((exports.gpu_repo / "goemotions" / "1" / "metadata.json").read_text())
    for name in ("input_ids", "attention_mask"):
        assert low[name] == (1, 1)
        assert high[name] == (config.max_batch_size, max(meta["length_buckets"]))
    assert [w.inputs["input_ids"].dims[0] for w in config.model_warmup] == meta["length_buckets"]
    assert meta["tensorrt_profile"]["max"] == params["trt_profile_max_shapes"]


def test_plan_builder_script_uses_what_the_export_writes(exports):
    script = (ROOT / "export" / "trt" / "build_plan.sh").read_text()
    subprocess.run(["bash", "-n", str(ROOT / "export" / "trt" / "build_plan.sh")], check=True)
    for produced in ("model.onnx", "metadata.json", "config.plan.pbtxt", "tensorrt_profile"):
        assert produced in script
    assert (exports.gpu_repo / "goemotions" / "config.plan.pbtxt").exists()


@pytest.mark.parametrize("name", MODELS)
def test_metadata_and_parity_report_are_saved(exported_repo, name):
    version_dir = exported_repo / name / "1"
    meta = json.loads((version_dir / "metadata.json").read_text())
    parity = json.loads((version_dir / "parity.json").read_text())
    assert parity["ok"] and parity == meta["parity"]
    assert {c["name"] for c in parity["checks"]} >= {
        "fp32 ONNX vs PyTorch: max |logit diff|",
        "fp16 vs fp32: predicted-label agreement",
        "served fp32: max |score diff| alone vs batched",
    }
    assert not any("int8" in c["name"] for c in parity["checks"])
    assert set(meta["thresholds"]) == set(meta["labels"])
    for graph in meta["graphs"].values():
        assert graph["sha256"] == sha256_file(version_dir / graph["file"])


@pytest.mark.parametrize("name", ARTIFACTS)
def test_export_reproduces_the_committed_serving_record(exported_repo, name):
    """On this machine, the export's served graph scores dev as recorded and keeps the thresholds."""
    record = ServingRecord.load(MODELS_DIR / name)
    meta = json.loads((exported_repo / name / "1" / "metadata.json").read_text())
    checks = {c["name"]: c for c in meta["parity"]["checks"]}
    dev_check = checks[f"served fp32: dev {record.headline} vs committed {record.dev:.4f}: |diff|"]
    assert dev_check["passed"] and dev_check["limit"] == 0.003
    assert abs(meta["served_metrics"]["dev"] - record.dev) <= 0.003
    assert meta["served_metrics"]["test"] == record.test and meta["served_graph"] == record.cpu_graph
    assert meta["thresholds"] == dict(
        zip(meta["labels"], load_thresholds(MODELS_DIR / name, tuple(meta["labels"])), strict=True)
    )
    if meta["problem_type"] == "multi_label":
        assert checks["dev-tuned thresholds vs committed: max |diff|"]["passed"]


@pytest.mark.parametrize("name", MODELS)
def test_models_are_ready_in_triton(triton, name):
    client = triton_grpc.InferenceServerClient(triton.grpc_url)
    assert client.is_server_ready()
    assert client.is_model_ready(name)
    config = client.get_model_config(name).config
    assert config.backend == "python" and config.max_batch_size == 64


def infer_inputs(ids, mask, token_types=False):
    arrays = {"input_ids": ids, "attention_mask": mask}
    if token_types:
        arrays["token_type_ids"] = np.zeros_like(ids)
    inputs = []
    for name, array in arrays.items():
        inputs.append(triton_grpc.InferInput(name, list(array.shape), "INT64"))
        inputs[-1].set_data_from_numpy(array)
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
    """One request with two padded rows equals two single-row requests (padding is masked).

    Checked on the user model, which reads token_type_ids too; tests/triton/test_batch_independence.py
    checks the shipped models through every request path.
    """
    client = triton_grpc.InferenceServerClient(triton.grpc_url)
    model = "tiny-user-model"
    short = np.array([[101, 7592, 102]], dtype=np.int64)
    long = np.array([[101, 7592, 2088, 2003, 2307, 102]], dtype=np.int64)
    a = client.infer(model, infer_inputs(short, np.ones_like(short), True)).as_numpy("logits")
    b = client.infer(model, infer_inputs(long, np.ones_like(long), True)).as_numpy("logits")
    padded = np.zeros((2, 6), dtype=np.int64)
    padded[0, :3], padded[1] = short[0], long[0]
    both = client.infer(model, infer_inputs(padded, (padded != 0).astype(np.int64), True)).as_numpy("logits")
    np.testing.assert_allclose(both, np.vstack([a, b]), atol=1e-4)


def batch_stats(client):
    stats = client.get_inference_statistics("goemotions").model_stats[0]
    return stats.inference_count, stats.execution_count


async def test_dynamic_batcher_batches_real_single_text_requests_at_concurrency_16(
    triton, exported_repo, data_dir
):
    """Issue acceptance: executions <= 1/4 of inferences for concurrent single-text requests."""
    from emotionaware.datasets import load_goemotions
    from gateway.specs import load_model_spec

    spec = load_model_spec(exported_repo, "goemotions")
    sequences = [
        spec.tokenizer.encode(e.text).input_ids.reshape(1, -1) for e in load_goemotions(data_dir).test[:320]
    ]
    sync_client = triton_grpc.InferenceServerClient(triton.grpc_url)
    inferences_before, executions_before = batch_stats(sync_client)
    client = triton_aio.InferenceServerClient(triton.grpc_url)
    pending = iter(sequences)

    async def worker():
        for ids in pending:  # 16 workers share one iterator: 16 requests in flight at any time
            result = await client.infer("goemotions", infer_inputs(ids, np.ones_like(ids)))
            assert result.as_numpy("logits").shape == (1, 28)

    try:
        await asyncio.gather(*(worker() for _ in range(16)))
    finally:
        await client.close()
    # Statistics are recorded after each response is sent: wait for the last ones to land.
    deadline = time.monotonic() + 10
    while True:
        inferences, executions = batch_stats(sync_client)
        inferences -= inferences_before
        executions -= executions_before
        if inferences >= len(sequences) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert inferences == len(sequences)
    assert executions <= inferences / 4, f"{executions} executions for {inferences} inferences"
