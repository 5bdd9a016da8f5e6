"""The default backend: Triton over gRPC (async).

Triton's errors are translated into the gateway's error hierarchy here, so nothing above
this module knows about tritonclient.
"""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np
import tritonclient.grpc.aio as triton_aio
from tritonclient.grpc import InferInput, InferRequestedOutput
from tritonclient.utils import InferenceServerException

from gateway.backends.base import BatchOutput
from gateway.errors import BackendUnavailable, DeadlineExceeded, GatewayError, InternalError, Overloaded
from gateway.metrics import BACKEND_RETRIES

log = logging.getLogger(__name__)


def translate(exc: InferenceServerException, retry_after_ms: int = 100) -> GatewayError:
    """Map a Triton/tritonclient error onto the gateway's hierarchy."""
    status = (exc.status() or "").upper()
    message = (exc.message() or "").lower()
    if "DEADLINE_EXCEEDED" in status or "timeout" in message or "deadline" in message:
        return DeadlineExceeded("the request deadline passed while waiting for the model")
    if "exceeds maximum queue size" in message or "RESOURCE_EXHAUSTED" in status:
        return Overloaded("the inference server's queue is full", retry_after_ms)
    if "UNAVAILABLE" in status or "unknown model" in message or "not ready" in message:
        return BackendUnavailable("inference server is unavailable")
    log.error("triton error status=%s: %s", exc.status(), exc.message())
    return InternalError()


class TritonBackend:
    """Triton Inference Server over gRPC with the asyncio client."""

    def __init__(
        self,
        url: str,
        max_message_bytes: int,
        retries: int = 2,
        retry_after_ms: int = 100,
        pads_to_buckets: bool = False,
    ) -> None:
        """``pads_to_buckets``: the Triton behind ``url`` serves graphs that batch equal shapes only."""
        self.pads_to_buckets = pads_to_buckets
        self._retries = retries
        self._retry_after_ms = retry_after_ms
        channel_args = [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
            # Keep the HTTP/2 connection alive across idle periods behind load balancers.
            ("grpc.keepalive_time_ms", 30_000),
            # Reconnect within a second of Triton coming back (after a crash and restart);
            # gRPC's default back-off grows to two minutes.
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 1000),
        ]
        self._client = triton_aio.InferenceServerClient(url=url, channel_args=channel_args)

    async def infer(
        self, model: str, version: str, inputs: dict[str, np.ndarray], timeout_s: float
    ) -> BatchOutput:
        """One inference, retried after UNAVAILABLE (inference is idempotent) within the deadline."""
        deadline = time.monotonic() + timeout_s
        for attempt in range(self._retries + 1):
            try:
                return await self._infer_once(model, version, inputs, deadline - time.monotonic())
            except BackendUnavailable:
                backoff = 0.02 * 2**attempt
                if attempt == self._retries or time.monotonic() + backoff >= deadline:
                    raise
                BACKEND_RETRIES.labels(model).inc()
                await asyncio.sleep(backoff)
        raise AssertionError("unreachable")

    async def _infer_once(
        self, model: str, version: str, inputs: dict[str, np.ndarray], timeout_s: float
    ) -> BatchOutput:
        if timeout_s <= 0:
            raise DeadlineExceeded("the request deadline passed while waiting for the model")
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
            raise translate(exc, self._retry_after_ms) from exc
        return BatchOutput(result.as_numpy("logits"), result.get_response().model_version)

    async def is_ready(self, models: tuple[tuple[str, str], ...]) -> bool:
        try:
            if not await self._client.is_server_ready(client_timeout=2.0):
                return False
            for name, version in models:
                if not await self._client.is_model_ready(name, version, client_timeout=2.0):
                    return False
            return True
        except InferenceServerException:
            return False

    async def close(self) -> None:
        await self._client.close()
