"""Measure the graph the CPU flavour serves and record it in the artifact's ``serving.json``.

``make eval`` runs this after the evaluation (train/evaluate.py takes it as ``measure_export``),
so the model card states what the served graph scores, and every later export verifies the
record instead of re-deriving it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from emotionaware.artifact import SERVING, ServingRecord
from export.cli import export_source
from export.source import from_artifact
from export.triton_repo import CpuOptions

# Why the CPU flavour serves the fused fp32 graph (bench/cpu_graphs.py has the measurements).
FP32_REASON = (
    "its scores do not depend on batch neighbours or on the CPU; the int8 graphs measured in "
    "bench/cpu_graphs.py were faster but moved with batch composition, or slower."
)


def measure_served_graph(model_dir: Path, data_dir: Path) -> dict:
    """Measure the graph the CPU flavour serves and record it in ``serving.json``.

    Runs the real export (fp32 ONNX, fusions, checks) into a temporary folder, so the card
    states what the served graph scores at the committed thresholds, not only the PyTorch
    model. Every later export verifies this record instead of re-deriving anything.
    """
    previous = ServingRecord.load(model_dir)
    graph = previous.cpu_graph if previous else "fp32"
    with tempfile.TemporaryDirectory(prefix="eval-export-") as tmp:
        result = export_source(
            from_artifact(model_dir), Path(tmp) / "repo", Path(tmp) / "gpu", data_dir,
            cpu=CpuOptions(served_graph=graph), measure_test=True,
        )  # fmt: skip
    parity = result.parity
    record = ServingRecord(graph, FP32_REASON, parity.headline, parity.dev, parity.test)
    (model_dir / SERVING).write_text(record.to_json())
    return {
        "served_cpu_graph": graph,
        "reason": record.reason,
        "headline": {
            f"{graph} dev {parity.headline}": parity.dev,
            f"{graph} test {parity.headline}": parity.test,
        },
        "checks": {
            c["name"]: {"value": c["value"], "limit": c["limit"], "passed": c["passed"]}
            for c in result.report["checks"]
        },
    }
