"""In-process ONNX Runtime backend: the same graphs Triton serves, without a server.

For a laptop, a notebook or a test: ``--backend embedded`` runs the graph named in each
model's ``config.pbtxt`` (parameter ``onnx_file``, the graph that passed the export's parity
checks) from the same model repository, so the same request gets the same scores as from
Triton. Inference runs in a worker thread so the event loop stays free.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

import numpy as np
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from gateway.backends.base import BatchOutput
from gateway.errors import BackendUnavailable

log = logging.getLogger(__name__)


def served_graph(model_dir: Path) -> str:
    """File name of the graph the model's Triton config serves."""
    config = text_format.Parse((model_dir / "config.pbtxt").read_text(), mc.ModelConfig())
    if "onnx_file" in config.parameters:
        return config.parameters["onnx_file"].string_value
    return config.default_model_filename or "model.onnx"


class EmbeddedBackend:
    """ONNX Runtime sessions per (model, version), created on first use."""

    pads_to_buckets = False  # ONNX Runtime in process takes any batch shape

    def __init__(self, repository: Path, threads: int = 0) -> None:
        self._repository = Path(repository)
        self._threads = threads
        self._sessions: dict[tuple[str, str], object] = {}
        self._lock = threading.Lock()

    def _session(self, model: str, version: str):
        key = (model, version)
        with self._lock:
            if key not in self._sessions:
                import onnxruntime as ort  # optional dependency: only embedded mode needs it

                model_dir = self._repository / model
                graph = model_dir / version / served_graph(model_dir)
                if not graph.exists():
                    raise BackendUnavailable(f"model {model} version {version} has no graph on disk")
                options = ort.SessionOptions()
                options.intra_op_num_threads = self._threads
                options.inter_op_num_threads = 1
                self._sessions[key] = ort.InferenceSession(
                    str(graph), options, providers=["CPUExecutionProvider"]
                )
            return self._sessions[key]

    def _run(self, model: str, version: str, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return self._session(model, version).run(["logits"], inputs)[0]

    async def infer(
        self, model: str, version: str, inputs: dict[str, np.ndarray], timeout_s: float
    ) -> BatchOutput:
        # timeout_s is enforced by the caller's deadline; a running ORT call cannot be interrupted.
        logits = await asyncio.to_thread(self._run, model, version, inputs)
        return BatchOutput(np.asarray(logits, dtype=np.float32), version)

    async def is_ready(self, models: tuple[tuple[str, str], ...]) -> bool:
        try:
            for model, version in models:
                await asyncio.to_thread(self._session, model, version)
        except Exception as exc:  # a graph that fails to load means not ready, whatever the reason
            log.error("embedded backend cannot load a model: %s", type(exc).__name__)
            return False
        return True

    async def close(self) -> None:
        self._sessions.clear()
