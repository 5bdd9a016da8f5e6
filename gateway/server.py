"""The gateway process: the core (pipeline, routing, access) and its two transports, gRPC and
HTTP/JSON, on one event loop; metrics, readiness, file reloads and graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence

import grpc
from prometheus_client import start_http_server

from gateway import collector
from gateway.access import Gatekeeper
from gateway.backends.base import Backend
from gateway.backends.triton import TritonBackend
from gateway.feedback.writer import FeedbackWriter
from gateway.grpc.server import GrpcTransport
from gateway.http.app import HttpTransport
from gateway.pipeline import Pipeline
from gateway.protocol.service import EmotionApi
from gateway.reloading import Reloader
from gateway.routing import Router
from gateway.settings import Settings, load_settings

log = logging.getLogger("gateway")


class GatewayServer:
    """The core and its transports; ``start()`` returns the bound gRPC port (``http_port`` has
    the HTTP one)."""

    def __init__(
        self,
        settings: Settings,
        backend: Backend | None = None,
        interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    ) -> None:
        """``interceptors`` run around every gRPC call of the public port, after authentication."""
        self.settings = settings
        self.backend = backend or make_backend(settings)
        self.reloader = Reloader()
        self.router = Router(settings)
        self.reloader.add("routing", [settings.routing_file], self.router.reload, settings.routing_poll_s)
        self.gatekeeper = Gatekeeper(settings, lambda: self.router.table.clients)
        if (tokens := self.gatekeeper.authenticator.tokens) is not None:
            self.reloader.add(
                "tokens", [settings.auth_tokens_file], tokens.reload, settings.credentials_poll_s
            )
        self.pipeline = Pipeline(settings, self.router, self.backend)
        self.feedback = (
            FeedbackWriter(
                settings.feedback_database,
                settings.feedback_queue_max,
                settings.feedback_migrate,
                settings.retry_after_ms,
            )
            if settings.feedback_database
            else None
        )
        self.api = EmotionApi(self.pipeline, settings, feedback=self.feedback)
        self.grpc = GrpcTransport(settings, self.api, self.gatekeeper, self.reloader, interceptors)
        self.http = (
            HttpTransport(settings, self.api, self.gatekeeper, self.reloader, lambda: bool(self._serving))
            if settings.http_listen
            else None
        )
        self.http_port: int | None = None
        self._tasks: list[asyncio.Task] = []
        self._serving: bool | None = None

    @property
    def interceptors(self) -> tuple[grpc.aio.ServerInterceptor, ...]:
        return self.grpc.interceptors

    @interceptors.setter
    def interceptors(self, value: tuple[grpc.aio.ServerInterceptor, ...]) -> None:
        self.grpc.interceptors = value

    @property
    def health_port(self) -> int | None:
        return self.grpc.health_port

    @property
    def certificates(self):
        return self.grpc.certificates

    async def start(self) -> int:
        await self.grpc.set_serving(False)
        port = await self.grpc.start()
        if self.http is not None:
            self.http_port = await self.http.start()
        self._tasks = [asyncio.create_task(self._watch_readiness()), asyncio.create_task(self.reloader.run())]
        log.info(
            "gateway listening: gRPC port %d, HTTP %s, models %s, backend %s",
            port,
            f"port {self.http_port}" if self.http_port else "off",
            ",".join(self.router.table.routes),
            self.settings.triton_url if self.settings.backend == "triton" else "embedded",
        )
        return port

    async def _set_serving(self, serving: bool) -> None:
        if serving == self._serving:
            return
        await self.grpc.set_serving(serving)
        if self._serving is not None or serving:
            log.info("health: %s", "SERVING" if serving else "NOT_SERVING")
        self._serving = serving
        if serving:
            # Analyze's sentencizer imports spaCy (seconds): once serving, so a restart is not
            # slower to answer Classify; an Analyze that comes first waits for it. What start-up
            # built stays out of garbage collections (gateway.collector), spaCy's too once loaded.
            collector.freeze_once()
            loading = self.pipeline.warm_sentencizer()
            if loading is not None:
                loading.add_done_callback(lambda _: collector.freeze())

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
        self._serving = False
        stops = [self.grpc.stop(self.settings.shutdown_grace_s)]
        if self.http is not None:
            stops.append(self.http.stop())
        await asyncio.gather(*stops)
        if self.feedback is not None:
            await self.feedback.close()
        await self.pipeline.close()
        await self.backend.close()


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
    collector.tune(settings.gc_young_threshold)
    if settings.metrics_port:
        start_http_server(
            settings.metrics_port, addr=settings.listen.rsplit(":", 1)[0].strip("[]") or "0.0.0.0"
        )
    asyncio.run(run(settings))
