"""Inference backends behind one interface. The default calls Triton over gRPC (async).

Triton's errors are translated into the gateway's error hierarchy here, so nothing above
this module knows about tritonclient.
"""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np
import tritonclient.grpc.aio as triton_aio
from tritonclient.grpc import InferInput, InferRequestedOutput
from tritonclient.utils import InferenceServerException

from gateway.errors import BackendUnavailable, DeadlineExceeded, GatewayError, InternalError, Overloaded
from gateway.types import ModelOutput

log = logging.getLogger(__name__)


class Backend(Protocol):
    """Runs a model on token ids and reports readiness."""

    async def infer(
        self, model: str, version: str, inputs: dict[str, np.ndarray], timeout_s: float
    ) -> ModelOutput:
        """Logits for one sequence: ``inputs`` maps each model input name to int64 (1, tokens)."""
        ...

    async def is_ready(self, models: tuple[str, ...]) -> bool:
        """True when the server and every named model can serve requests."""
        ...

    async def close(self) -> None: ...


def translate(exc: InferenceServerException) -> GatewayError:
    """Map a Triton/tritonclient error onto the gateway's hierarchy."""
    status = (exc.status() or "").upper()
    message = (exc.message() or "").lower()
    if "DEADLINE_EXCEEDED" in status or "timeout" in message or "deadline" in message:
        return DeadlineExceeded("the request deadline passed while waiting for the model")
    if "exceeds maximum queue size" in message or "RESOURCE_EXHAUSTED" in status:
        return Overloaded("inference queue is full; retry after a short back-off")
    if "UNAVAILABLE" in status or "unknown model" in message or "not ready" in message:
        return BackendUnavailable("inference server is unavailable")
    log.error("triton error status=%s: %s", exc.status(), exc.message())
    return InternalError()


class TritonBackend:
    """Triton Inference Server over gRPC with the asyncio client."""

    def __init__(self, url: str, max_message_bytes: int) -> None:
        channel_args = [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
            # Keep the HTTP/2 connection alive across idle periods behind load balancers.
            ("grpc.keepalive_time_ms", 30_000),
        ]
        self._client = triton_aio.InferenceServerClient(url=url, channel_args=channel_args)

    async def infer(
        self, model: str, version: str, inputs: dict[str, np.ndarray], timeout_s: float
    ) -> ModelOutput:
        tensors = []
        for name, array in inputs.items():
            tensor = InferInput(name, list(array.shape), "INT64")
            tensor.set_data_from_numpy(array)
            tensors.append(tensor)
        try:
            result = await self._client.infer(
                model_name=model,
                model_version=version,
                inputs=tensors,
                outputs=[InferRequestedOutput("logits")],
                # The caller's remaining deadline becomes the gRPC deadline to Triton, whose
                # gRPC front end cancels the request when it expires.
                client_timeout=timeout_s,
            )
        except InferenceServerException as exc:
            raise translate(exc) from exc
        return ModelOutput(result.as_numpy("logits")[0], result.get_response().model_version)

    async def is_ready(self, models: tuple[str, ...]) -> bool:
        try:
            if not await self._client.is_server_ready(client_timeout=2.0):
                return False
            for name in models:
                if not await self._client.is_model_ready(name, client_timeout=2.0):
                    return False
            return True
        except InferenceServerException:
            return False

    async def close(self) -> None:
        await self._client.close()
