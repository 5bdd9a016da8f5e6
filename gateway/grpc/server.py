"""The gRPC transport: the public port (API, health, reflection) and the optional health port."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from emotionaware.v1 import emotion_pb2
from gateway.access import Gatekeeper
from gateway.grpc.credentials import CertificateReloader
from gateway.grpc.decoding import add_service
from gateway.grpc.interceptor import CallerInterceptor
from gateway.grpc.servicer import EmotionServicer
from gateway.protocol.service import EmotionApi
from gateway.reloading import Reloader
from gateway.settings import Settings

log = logging.getLogger(__name__)
SERVICE_NAME = emotion_pb2.DESCRIPTOR.services_by_name["EmotionService"].full_name
HEALTH_NAME = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name


class GrpcTransport:
    """The API over gRPC; ``start()`` returns the bound port."""

    def __init__(
        self,
        settings: Settings,
        api: EmotionApi,
        gatekeeper: Gatekeeper,
        reloader: Reloader,
        interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    ) -> None:
        """``interceptors`` run around every call of the public port, after authentication."""
        self.settings = settings
        self.api = api
        self.callers = CallerInterceptor(gatekeeper)
        self.interceptors: tuple[grpc.aio.ServerInterceptor, ...] = (self.callers, *interceptors)
        self.certificates = CertificateReloader(settings, reloader) if settings.tls_cert_file else None
        self.health = HealthServicer()
        self._server: grpc.aio.Server | None = None
        self._health_server: grpc.aio.Server | None = None
        self.port: int | None = None
        self.health_port: int | None = None

    async def start(self) -> int:
        server = grpc.aio.server(
            interceptors=self.interceptors,
            maximum_concurrent_rpcs=self.settings.max_concurrent_rpcs,
            options=[
                ("grpc.max_send_message_length", self.settings.max_message_bytes),
                ("grpc.max_receive_message_length", self.settings.max_message_bytes),
                *(
                    [("grpc.max_concurrent_streams", self.settings.max_streams_per_connection)]
                    if self.settings.max_streams_per_connection
                    else []
                ),
            ],
        )
        # Not the generated add_*_to_server: its deserializers raise on undecodable bytes.
        add_service(
            emotion_pb2.DESCRIPTOR.services_by_name["EmotionService"],
            emotion_pb2,
            EmotionServicer(self.api),
            server,
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        _enable_reflection(server, (SERVICE_NAME, HEALTH_NAME))
        self.port = self._bind(server, self.settings.listen, tls=bool(self.settings.tls_cert_file))
        await server.start()
        self._server = server
        if self.settings.health_listen:
            self._health_server = grpc.aio.server()
            health_pb2_grpc.add_HealthServicer_to_server(self.health, self._health_server)
            # Reflection too: it describes the API, serves no data, and lets grpcurl find health.
            _enable_reflection(self._health_server, (HEALTH_NAME,))
            self.health_port = self._bind(self._health_server, self.settings.health_listen, tls=False)
            await self._health_server.start()
        return self.port

    def _bind(self, server: grpc.aio.Server, address: str, tls: bool) -> int:
        if tls:
            assert self.certificates is not None
            port = server.add_secure_port(address, self.certificates.credentials())
        else:
            port = server.add_insecure_port(address)
        if port == 0:
            raise RuntimeError(f"could not bind {address}")
        return port

    async def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", SERVICE_NAME):
            await self.health.set(name, status)

    async def stop(self, grace_s: float) -> None:
        """Refuse new calls, let in-flight ones finish within ``grace_s``."""
        await self.health.enter_graceful_shutdown()
        if self._server is not None:
            await self._server.stop(grace_s)
        if self._health_server is not None:
            await self._health_server.stop(0)


def _enable_reflection(server: grpc.aio.Server, services: tuple[str, ...]) -> None:
    reflection.enable_server_reflection((*services, reflection.SERVICE_NAME), server)
