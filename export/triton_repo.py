"""Triton model repositories from one export: the bundled CPU flavour and the GPU flavour.

1. Bundled (``model_repository/``): what ``make serve``, the tests and CPU users run. The
   tritonserver of the nvidia-pytriton wheel has only the python backend, so a python model
   runs ONNX Runtime on the fused fp32 graph and pads ragged batches itself.
2. GPU (``model_repository_gpu/``): for NVIDIA's Triton container on GPU nodes (what the Helm
   chart deploys): ``platform: onnxruntime_onnx`` with the TensorRT execution accelerator in
   FP16, the engine cache on a volume, one optimisation profile covering every length bucket,
   and ``config.plan.pbtxt`` for those who build a ``tensorrt_plan`` with trtexec
   (``export/trt/build_plan.sh``). It cannot run here; tests validate it statically.

Every ``config.pbtxt`` is built as a ``ModelConfig`` protobuf (from tritonclient) and printed
in text format, so it is valid by construction and tests parse it back with the same schema.
A new export of a changed source becomes a new version folder; older versions stay on disk
and ``version_policy`` (latest 1) serves the newest.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from export.source import ExportSource, sha256_file

PYTHON_MODEL = Path(__file__).resolve().parent / "python_backend" / "model.py"
LABELS_FILE = "labels.txt"
METADATA_FILE = "metadata.json"
PARITY_FILE = "parity.json"
TOKENIZER_FILE = "tokenizer.json"
PLAN_CONFIG = "config.plan.pbtxt"
# Sequence-length buckets (tokens, special tokens included). The GPU flavour's backend does
# not pad ragged batches, so GPU callers pad to the next bucket and same-shape requests batch.
LENGTH_BUCKETS = (16, 32, 64, 128, 256, 512)
GRAPH_FILES = {"fp32": "model.onnx", "fp16": "model.fp16.onnx"}


@dataclass(frozen=True)
class CpuOptions:
    """Batching and threading of the bundled (python backend) flavour, each set on purpose."""

    max_batch_size: int = 64
    # No added delay: with one instance, requests that arrive while it executes are batched
    # together anyway (measured: about 9 requests per execution at concurrency 16), so waiting
    # would only add latency at low load.
    max_queue_delay_us: int = 0
    # One instance using every core: intra-op parallelism beats instance parallelism for one
    # small encoder on a few cores, and batches grow instead of being split.
    instances: int = 1
    intra_op_threads: int = 2
    # The fused fp32 graph: a text's scores do not depend on its batch neighbours or on the
    # CPU. Dynamic int8 was 2.3x faster but moved scores by up to 0.14 with batch composition
    # (bench/cpu_graphs.py measures every candidate side by side).
    served_graph: str = "fp32"
    # No `default_queue_policy` in this flavour. With any queue policy set (queue bound,
    # timeout or timeout override), the dynamic batcher of the bundled Triton 2.51 left about
    # 1 request in 40 waiting for its 500 ms idle wake-up at concurrency 1 (measured: p99
    # 514 ms instead of 12 ms). Overload and deadlines are bounded in the gateway instead.


@dataclass(frozen=True)
class GpuOptions:
    """The GPU flavour's batching, queueing and TensorRT settings."""

    max_batch_size: int = 128
    # A GPU executes a batch of 128 short texts about as fast as one: wait up to 1 ms to fill it.
    max_queue_delay_us: int = 1000
    # Bounded queue, so overload is rejected fast (RESOURCE_EXHAUSTED at the gateway) instead
    # of piling up; queued requests time out after 2 s unless the caller's deadline says less.
    max_queue_size: int = 2048
    queue_timeout_us: int = 2_000_000
    instances: int = 1
    accelerator: str = "tensorrt"  # or "cuda": the ORT-fused fp16 graph on the CUDA provider
    engine_cache: str = "/var/cache/emotionaware/trt"  # a volume, so engines survive restarts
    workspace_bytes: int = 2 << 30


def buckets_for(max_length: int) -> list[int]:
    return [b for b in LENGTH_BUCKETS if b < max_length] + [max_length]


def next_version(model_dir: Path, digest: str) -> int:
    """The version to write: the newest one again if it came from the same source, else a new one."""
    versions = sorted(int(p.name) for p in model_dir.glob("[0-9]*") if p.is_dir() and p.name.isdigit())
    if not versions:
        return 1
    meta = model_dir / str(versions[-1]) / METADATA_FILE
    if meta.exists() and json.loads(meta.read_text()).get("source_digest") == digest:
        return versions[-1]
    return versions[-1] + 1


def is_current(repo: Path, name: str, digest: str) -> bool:
    """True when the newest exported version of ``name`` in ``repo`` came from ``digest``."""
    model_dir = repo / name
    if not (model_dir / "config.pbtxt").exists():
        return False
    version = next_version(model_dir, digest)
    return (model_dir / str(version) / METADATA_FILE).exists()


def refresh_python_model(repo: Path, name: str, digest: str) -> bool:
    """Bring an up-to-date export's ``model.py`` in line with this release's; True if it changed.

    The Python model is runtime code, not part of what the artifact digest covers, so a
    release that changes only it must not need a full re-export to take effect.
    """
    version_dir = repo / name / str(next_version(repo / name, digest))
    served = version_dir / "model.py"
    if not served.exists() or served.read_bytes() == PYTHON_MODEL.read_bytes():
        return False
    shutil.copyfile(PYTHON_MODEL, served)
    return True


def _add_io(config: mc.ModelConfig, source: ExportSource, ragged: bool) -> None:
    for name in source.input_names:
        config.input.add(name=name, data_type=mc.TYPE_INT64, dims=[-1], allow_ragged_batch=ragged)
    config.output.add(
        name="logits", data_type=mc.TYPE_FP32, dims=[len(source.labels)], label_filename=LABELS_FILE
    )


def _add_warmup(config: mc.ModelConfig, source: ExportSource) -> None:
    """One warm-up request per length bucket, so no user request pays for first-use setup."""
    for length in buckets_for(source.max_length):
        warmup = config.model_warmup.add(name=f"bucket_{length}", batch_size=1)
        for name in source.input_names:
            # Token id 0 is [PAD]-like for BERT vocabularies; any id is valid for warm-up.
            warmup.inputs[name].data_type = mc.TYPE_INT64
            warmup.inputs[name].dims.append(length)
            warmup.inputs[name].zero_data = True


def cpu_config(source: ExportSource, options: CpuOptions, graph_file: str) -> mc.ModelConfig:
    config = mc.ModelConfig(name=source.name, backend="python", max_batch_size=options.max_batch_size)
    _add_io(config, source, ragged=True)
    config.dynamic_batching.max_queue_delay_microseconds = options.max_queue_delay_us
    config.instance_group.add(kind=mc.ModelInstanceGroup.KIND_CPU, count=options.instances)
    config.version_policy.latest.num_versions = 1
    for key, value in {
        "onnx_file": graph_file,
        "intra_op_threads": str(options.intra_op_threads),
        "pad_token_id": str(source.pad_token_id),
        "max_positions": str(source.max_length),
        "length_buckets": ",".join(str(b) for b in buckets_for(source.max_length)),
    }.items():
        config.parameters[key].string_value = value
    _add_warmup(config, source)
    return config


def _shapes(source: ExportSource, batch: int, length: int) -> str:
    return ",".join(f"{name}:{batch}x{length}" for name in source.input_names)


def tensorrt_profile(source: ExportSource, options: GpuOptions) -> dict[str, str]:
    """One optimisation profile from (1, 1) to (max batch, longest bucket), tuned for half a batch of 64."""
    longest = buckets_for(source.max_length)[-1]
    return {
        "min": _shapes(source, 1, 1),
        "opt": _shapes(source, options.max_batch_size // 2, min(64, longest)),
        "max": _shapes(source, options.max_batch_size, longest),
    }


def gpu_config(source: ExportSource, options: GpuOptions) -> mc.ModelConfig:
    config = mc.ModelConfig(
        name=source.name, platform="onnxruntime_onnx", max_batch_size=options.max_batch_size
    )
    _add_io(config, source, ragged=False)
    batching = config.dynamic_batching
    batching.max_queue_delay_microseconds = options.max_queue_delay_us
    policy = batching.default_queue_policy
    policy.max_queue_size = options.max_queue_size
    policy.timeout_action = mc.ModelQueuePolicy.REJECT
    policy.default_timeout_microseconds = options.queue_timeout_us
    policy.allow_timeout_override = True
    config.instance_group.add(kind=mc.ModelInstanceGroup.KIND_GPU, count=options.instances)
    config.version_policy.latest.num_versions = 1
    accelerator = config.optimization.execution_accelerators.gpu_execution_accelerator.add()
    if options.accelerator == "tensorrt":
        # TensorRT parses standard ONNX ops only, so it gets the plain fp32 graph and builds
        # FP16 engines itself; one profile spans batch 1..max and every length bucket.
        config.default_model_filename = GRAPH_FILES["fp32"]
        accelerator.name = "tensorrt"
        profile = tensorrt_profile(source, options)
        for key, value in {
            "precision_mode": "FP16",
            "max_workspace_size_bytes": str(options.workspace_bytes),
            "trt_engine_cache_enable": "1",
            "trt_engine_cache_path": options.engine_cache,
            "trt_timing_cache_enable": "1",
            "trt_timing_cache_path": options.engine_cache,
            "trt_profile_min_shapes": profile["min"],
            "trt_profile_opt_shapes": profile["opt"],
            "trt_profile_max_shapes": profile["max"],
        }.items():
            accelerator.parameters[key] = value
    elif options.accelerator == "cuda":
        config.default_model_filename = GRAPH_FILES["fp16"]
        accelerator.name = "cuda"
    else:
        raise ValueError(f"unknown GPU accelerator {options.accelerator!r}")
    _add_warmup(config, source)
    return config


def cpu_fallback_config(source: ExportSource, options: GpuOptions) -> mc.ModelConfig:
    """``configs/cpu.pbtxt``: the same model on CPU nodes (``--model-config-name=cpu``), for dev clusters."""
    config = gpu_config(source, options)
    config.ClearField("optimization")
    config.default_model_filename = GRAPH_FILES["fp32"]
    del config.instance_group[:]
    config.instance_group.add(kind=mc.ModelInstanceGroup.KIND_CPU, count=1)
    return config


def plan_config(source: ExportSource, options: GpuOptions) -> mc.ModelConfig:
    """Config for a ``tensorrt_plan`` built by export/trt/build_plan.sh from model.onnx."""
    config = gpu_config(source, options)
    config.ClearField("optimization")
    config.ClearField("default_model_filename")
    config.platform = "tensorrt_plan"
    return config


def _write_common(
    model_dir: Path, version_dir: Path, source: ExportSource, metadata: dict, report: dict
) -> None:
    shutil.copyfile(source.tokenizer_json, version_dir / TOKENIZER_FILE)
    (model_dir / LABELS_FILE).write_text("\n".join(source.labels) + "\n")
    (version_dir / PARITY_FILE).write_text(json.dumps(report, indent=2) + "\n")
    (version_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")


def base_metadata(source: ExportSource, version: int, report: dict, thresholds: tuple[float, ...]) -> dict:
    return {
        "name": source.name,
        "version": version,
        "source": source.kind,
        "source_digest": source.digest,
        "labels": list(source.labels),
        "problem_type": source.problem_type.value,
        "score": "sigmoid" if source.problem_type.value == "multi_label" else "softmax",
        "max_length": source.max_length,
        "input_names": list(source.input_names),
        "thresholds": dict(zip(source.labels, thresholds, strict=True)),
        "length_buckets": buckets_for(source.max_length),
        # >0: the model reads up to this many earlier turns (emotionaware.context) as segment two.
        "context_turns": source.context_turns,
        "long_text_mode": source.long_text_mode,
        **source.description,
        # The headline metric of the graph this flavour's CPU variant serves (null when unknown).
        "served_metrics": report.get("served_metrics"),
        "parity": report,
    }


def _version_dir(repo: Path, source: ExportSource) -> tuple[Path, int]:
    """The model folder's version folder for this source (created), and its number."""
    version = next_version(repo / source.name, source.digest)
    version_dir = repo / source.name / str(version)
    version_dir.mkdir(parents=True, exist_ok=True)
    return version_dir, version


def _graph_entries(version_dir: Path, variants: tuple[str, ...]) -> dict:
    return {
        v: {"file": GRAPH_FILES[v], "sha256": sha256_file(version_dir / GRAPH_FILES[v])} for v in variants
    }


def write_cpu(
    repo: Path,
    source: ExportSource,
    graphs: dict[str, Path],
    report: dict,
    options: CpuOptions,
    thresholds: tuple[float, ...],
) -> Path:
    """Bundled flavour: the python backend serving the fused fp32 graph with the committed thresholds."""
    version_dir, version = _version_dir(repo, source)
    model_dir = version_dir.parent
    served = options.served_graph
    for variant in {"fp32", served}:
        shutil.copyfile(graphs[variant], version_dir / GRAPH_FILES[variant])
    shutil.copyfile(PYTHON_MODEL, version_dir / "model.py")
    metadata = base_metadata(source, version, report, thresholds) | {
        "flavour": "cpu-python-backend",
        "served_graph": served,
        "graphs": _graph_entries(version_dir, tuple(sorted({"fp32", served}))),
        "options": asdict(options),
    }
    _write_common(model_dir, version_dir, source, metadata, report)
    config = cpu_config(source, options, GRAPH_FILES[served])
    (model_dir / "config.pbtxt").write_text(text_format.MessageToString(config))
    return version_dir


def write_gpu(
    repo: Path,
    source: ExportSource,
    graphs: dict[str, Path],
    report: dict,
    options: GpuOptions,
    thresholds: tuple[float, ...],
) -> Path:
    """GPU flavour for NVIDIA's Triton container (onnxruntime backend with TensorRT)."""
    version_dir, version = _version_dir(repo, source)
    model_dir = version_dir.parent
    # TensorRT gets the plain exported graph (standard ops only); the CUDA provider the fused fp16 one.
    shutil.copyfile(graphs["fp32-plain"], version_dir / GRAPH_FILES["fp32"])
    shutil.copyfile(graphs["fp16"], version_dir / GRAPH_FILES["fp16"])
    metadata = base_metadata(source, version, report, thresholds) | {
        "flavour": f"gpu-onnxruntime-{options.accelerator}",
        "tensorrt_profile": tensorrt_profile(source, options),
        "graphs": _graph_entries(version_dir, ("fp32", "fp16")),
        "options": asdict(options),
    }
    _write_common(model_dir, version_dir, source, metadata, report)
    (model_dir / "config.pbtxt").write_text(text_format.MessageToString(gpu_config(source, options)))
    (model_dir / PLAN_CONFIG).write_text(text_format.MessageToString(plan_config(source, options)))
    (model_dir / "configs").mkdir(exist_ok=True)
    (model_dir / "configs" / "cpu.pbtxt").write_text(
        text_format.MessageToString(cpu_fallback_config(source, options))
    )
    return version_dir
