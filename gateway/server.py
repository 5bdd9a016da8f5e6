"""Gateway process: gRPC server with health, reflection, metrics and graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from emotionaware.v1 import emotion_pb2
from gateway.api import EmotionServicer
from gateway.auth import CallerInterceptor, CertificateReloader
from gateway.backends.base import Backend
from gateway.backends.triton import TritonBackend
from gateway.decoding import add_service
from gateway.pipeline import Pipeline
from gateway.routing import Router
from gateway.settings import Settings, load_settings

log = logging.getLogger("gateway")
SERVICE_NAME = emotion_pb2.DESCRIPTOR.services_by_name["EmotionService"].full_name
HEALTH_NAME = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name


class GatewayServer:
    """The gRPC server and its readiness watcher; ``start()`` returns the bound port."""

    def __init__(
        self,
        settings: Settings,
        backend: Backend | None = None,
        interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    ) -> None:
        """``interceptors`` run around every call of the public port, after authentication."""
        self.settings = settings
        self.backend = backend or make_backend(settings)
        self.router = Router(settings)
        self.callers = CallerInterceptor(settings, lambda: self.router.table.clients)
        self.interceptors = (self.callers, *interceptors)
        self.certificates = CertificateReloader(settings) if settings.tls_cert_file else None
        self.pipeline = Pipeline(settings, self.router, self.backend)
        self.health = HealthServicer()
        self._server: grpc.aio.Server | None = None
        self._health_server: grpc.aio.Server | None = None
        self.health_port: int | None = None
        self._tasks: list[asyncio.Task] = []
        self._serving: bool | None = None

    async def start(self) -> int:
        server = grpc.aio.server(
            interceptors=self.interceptors,
            maximum_concurrent_rpcs=self.settings.max_concurrent_rpcs,
            options=[
                ("grpc.max_send_message_length", self.settings.max_message_bytes),
                ("grpc.max_receive_message_length", self.settings.max_message_bytes),
            ],
        )
        # Not the generated add_*_to_server: its deserializers raise on undecodable bytes.
        add_service(
            emotion_pb2.DESCRIPTOR.services_by_name["EmotionService"],
            emotion_pb2,
            EmotionServicer(self.pipeline, self.settings),
            server,
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        _enable_reflection(server, (SERVICE_NAME, HEALTH_NAME))
        port = self._bind(server, self.settings.listen, tls=bool(self.settings.tls_cert_file))
        await self._set_serving(False)
        await server.start()
        self._server = server
        if self.settings.health_listen:
            self._health_server = grpc.aio.server()
            health_pb2_grpc.add_HealthServicer_to_server(self.health, self._health_server)
            # Reflection too: it describes the API, serves no data, and lets grpcurl find health.
            _enable_reflection(self._health_server, (HEALTH_NAME,))
            self.health_port = self._bind(self._health_server, self.settings.health_listen, tls=False)
            await self._health_server.start()
        self._tasks = [asyncio.create_task(self._watch_readiness()), asyncio.create_task(self.router.watch())]
        log.info(
            "gateway listening on port %d, models %s, backend %s",
            port,
            ",".join(self.router.table.routes),
            self.settings.triton_url if self.settings.backend == "triton" else "embedded",
        )
        return port

    def _bind(self, server: grpc.aio.Server, address: str, tls: bool) -> int:
        if tls:
            assert self.certificates is not None
            port = server.add_secure_port(address, self.certificates.credentials())
        else:
            port = server.add_insecure_port(address)
        if port == 0:
            raise RuntimeError(f"could not bind {address}")
        return port

    async def _set_serving(self, serving: bool) -> None:
        if serving == self._serving:
            return
        status = (
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", SERVICE_NAME):
            await self.health.set(name, status)
        if self._serving is not None or serving:
            log.info("health: %s", "SERVING" if serving else "NOT_SERVING")
        self._serving = serving

    async def _watch_readiness(self) -> None:
        """SERVING only while Triton and every routed model are ready; flips back when not."""
        while True:
            await self._set_serving(await self.backend.is_ready(self.router.table.backend_models))
            # While not serving, look more often: recovery shows within half a second.
            await asyncio.sleep(
                self.settings.health_poll_s if self._serving else min(self.settings.health_poll_s, 0.5)
            )

    async def stop(self) -> None:
        """Stop taking new calls, let in-flight ones finish within the grace period."""
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.health.enter_graceful_shutdown()
        if self._server is not None:
            await self._server.stop(self.settings.shutdown_grace_s)
        if self._health_server is not None:
            await self._health_server.stop(0)
        await self.pipeline.close()
        await self.backend.close()


def _enable_reflection(server: grpc.aio.Server, services: tuple[str, ...]) -> None:
    reflection.enable_server_reflection((*services, reflection.SERVICE_NAME), server)


def make_backend(settings: Settings) -> Backend:
    """The configured inference backend."""
    if settings.backend == "embedded":
        from gateway.backends.onnxruntime import EmbeddedBackend

        return EmbeddedBackend(settings.model_repository, settings.backend_threads)
    return TritonBackend(
        settings.triton_url,
        settings.max_message_bytes,
        settings.backend_retries,
        settings.retry_after_ms,
        pads_to_buckets=settings.pad_to_buckets,
    )


def configure_logging(settings: Settings) -> None:
    """Text or JSON lines on stderr. No logger of the gateway ever receives request text."""
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s", rename_fields={"levelname": "level"}
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=settings.log_level, handlers=[handler], force=True)


async def run(settings: Settings) -> None:
    gateway = GatewayServer(settings)
    await gateway.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down: draining in-flight requests for up to %.0f s", settings.shutdown_grace_s)
    await gateway.stop()


def main(argv: Sequence[str] | None = None) -> None:
    settings = load_settings(argv, os.environ)
    configure_logging(settings)
    if settings.metrics_port:
        start_http_server(
            settings.metrics_port, addr=settings.listen.rsplit(":", 1)[0].strip("[]") or "0.0.0.0"
        )
    asyncio.run(run(settings))
