"""Write a model into a Triton model repository (config, graph, labels, metadata, tokenizer).

``config.pbtxt`` is built as a ``ModelConfig`` protobuf (from tritonclient) and printed in
text format, so every generated config is valid by construction and the tests can parse it
back with the same schema.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from emotionaware.artifact import MANIFEST, METRICS, THRESHOLDS, WEIGHTS, ArtifactManifest, load_thresholds

PYTHON_MODEL = Path(__file__).resolve().parent / "python_backend" / "model.py"
LABELS_FILE = "labels.txt"
METADATA_FILE = "metadata.json"
TOKENIZER_FILE = "tokenizer.json"
ONNX_FILE = "model.onnx"


@dataclass(frozen=True)
class ServingOptions:
    """Batching, queueing and threading choices for the bundled (python backend) flavour."""

    max_batch_size: int = 64
    # No added delay: with one instance, requests that arrive while it executes are batched
    # together anyway (measured: about 9 requests per execution at concurrency 16), so waiting
    # would only add latency at low load.
    max_queue_delay_us: int = 0
    instances: int = 1
    intra_op_threads: int = 2
    # No `default_queue_policy` in this flavour. With any queue policy set (queue bound,
    # timeout or timeout override), the dynamic batcher of the bundled Triton 2.51 left about
    # 1 request in 40 waiting for its 500 ms idle wake-up at concurrency 1 (measured: p99
    # 514 ms instead of 12 ms). Overload and deadlines are bounded in the gateway instead.


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def artifact_digest(artifact_dir: Path) -> str:
    """One checksum over the files that determine the exported model's behaviour."""
    digest = hashlib.sha256()
    for name in (WEIGHTS, MANIFEST, THRESHOLDS):
        path = artifact_dir / name
        if path.exists():
            digest.update(name.encode() + b"\0" + sha256_file(path).encode())
    return digest.hexdigest()


def is_current(repo: Path, name: str, artifact_dir: Path) -> bool:
    """True when the newest exported version of ``name`` was built from this artifact."""
    model_dir = repo / name
    versions = [p for p in model_dir.glob("[0-9]*") if p.is_dir() and p.name.isdigit()]
    if not (model_dir / "config.pbtxt").exists() or not versions:
        return False
    meta_path = max(versions, key=lambda p: int(p.name)) / METADATA_FILE
    if not meta_path.exists():
        return False
    return json.loads(meta_path.read_text()).get("artifact_sha256") == artifact_digest(artifact_dir)


def build_config(manifest: ArtifactManifest, options: ServingOptions, pad_token_id: int) -> mc.ModelConfig:
    config = mc.ModelConfig(name=manifest.name, backend="python", max_batch_size=options.max_batch_size)
    for name in ("input_ids", "attention_mask"):
        config.input.add(name=name, data_type=mc.TYPE_INT64, dims=[-1], allow_ragged_batch=True)
    config.output.add(
        name="logits", data_type=mc.TYPE_FP32, dims=[len(manifest.labels)], label_filename=LABELS_FILE
    )
    batching = config.dynamic_batching
    batching.max_queue_delay_microseconds = options.max_queue_delay_us
    config.instance_group.add(kind=mc.ModelInstanceGroup.KIND_CPU, count=options.instances)
    config.version_policy.latest.num_versions = 1
    for key, value in {
        "onnx_file": ONNX_FILE,
        "intra_op_threads": str(options.intra_op_threads),
        "pad_token_id": str(pad_token_id),
        "max_positions": str(manifest.max_length),
    }.items():
        config.parameters[key].string_value = value
    return config


def write_model(
    repo: Path,
    version: int,
    manifest: ArtifactManifest,
    artifact_dir: Path,
    onnx_path: Path,
    tokenizer_json: Path,
    pad_token_id: int,
    options: ServingOptions,
    export_report: dict,
) -> Path:
    """Place one model version into ``repo`` and return its model folder."""
    model_dir = repo / manifest.name
    version_dir = model_dir / str(version)
    version_dir.mkdir(parents=True, exist_ok=True)
    if onnx_path != version_dir / ONNX_FILE:
        shutil.copyfile(onnx_path, version_dir / ONNX_FILE)
    shutil.copyfile(PYTHON_MODEL, version_dir / "model.py")
    shutil.copyfile(tokenizer_json, version_dir / TOKENIZER_FILE)
    (model_dir / LABELS_FILE).write_text("\n".join(manifest.labels) + "\n")
    thresholds = load_thresholds(artifact_dir, manifest.labels)
    metrics_path = artifact_dir / METRICS
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    metadata = {
        "name": manifest.name,
        "version": version,
        "labels": list(manifest.labels),
        "problem_type": manifest.problem_type.value,
        "max_length": manifest.max_length,
        "thresholds": dict(zip(manifest.labels, thresholds, strict=True)),
        "base": manifest.base.__dict__,
        "test_metrics": {k: metrics["test"][k] for k in ("macro_f1", "micro_f1")} if metrics else {},
        "onnx_sha256": sha256_file(version_dir / ONNX_FILE),
        "artifact_sha256": artifact_digest(artifact_dir),
        "export": export_report,
    }
    (version_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    config = build_config(manifest, options, pad_token_id)
    (model_dir / "config.pbtxt").write_text(text_format.MessageToString(config))
    return model_dir
