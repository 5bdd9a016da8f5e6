"""The HTTP/JSON transport: the same API as gRPC, on its own port of the same process.

Every method of ``emotionaware.v1.EmotionService`` (bodies and responses in the proto's
canonical JSON mapping: lowerCamelCase names, enums by name, 64-bit integers as strings):

=======  ============================  ===========================================
POST     ``/v1/classify``              ClassifyRequest -> ClassifyResponse
POST     ``/v1/classify/batch``        ClassifyBatchRequest -> ClassifyBatchResponse
POST     ``/v1/analyze``               AnalyzeRequest -> AnalyzeResponse
POST     ``/v1/feedback``              SubmitFeedbackRequest -> SubmitFeedbackResponse
GET      ``/v1/models``                -> ListModelsResponse
GET      ``/v1/models/{model}``        -> GetModelResponse
GET      ``/v1/stream``                WebSocket: ClassifyStreamRequest messages in,
                                       ClassifyStreamResponse messages out, in order
GET      ``/v1/health``                ``{"status": "SERVING"}`` (503 when not serving)
GET      ``/openapi.json``             the OpenAPI 3.1 document (gateway/http/openapi.py)
GET      ``/playground/``              the playground page (gateway/http/playground/)
=======  ============================  ===========================================

Errors are one JSON shape, ``{"error": {"code": <HTTP status>, "status": "<canonical
code>", "message": "...", "retryAfterMs": <n>}}``, their HTTP status taken from the one
error table (gateway/errors.py); 429 carries ``Retry-After`` (seconds) too. A request's
deadline is its ``X-Timeout-Ms`` header, else ``default_timeout_s``. Credentials are those
of gRPC: ``Authorization: Bearer <token>`` and, with ``--tls-client-ca-file``, a client
certificate (HTTPS with the gRPC port's certificate when ``--tls-cert-file`` is set).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from typing import Any

from aiohttp import WSMsgType, web
from google.protobuf import json_format
from google.protobuf.message import Message

from emotionaware.v1 import emotion_pb2 as pb
from gateway.access import Credentials, Gatekeeper, certificate_identity
from gateway.callers import enter_call, leave_call
from gateway.errors import Code, GatewayError, InvalidArgument, Overloaded, quote, retry_after_ms, to_status
from gateway.http.openapi import openapi_document
from gateway.protocol.convert import Undecodable
from gateway.protocol.service import UNARY_METHODS, EmotionApi
from gateway.reloading import Reloader
from gateway.settings import Settings

log = logging.getLogger(__name__)

# Longest parser message quoted back: protobuf's JSON parser may quote the value it rejected.
_PARSE_DETAIL_CHARS = 160
_PLAYGROUND = resources.files("gateway.http") / "playground"
_MAX_BYTES = web.AppKey("max_bytes", int)
_ASSET_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


def to_json(message: Message) -> dict[str, Any]:
    """The canonical JSON mapping of ``message``, with fields at their default values included
    (a client reads ``"truncated": false`` rather than guessing what an absent field means)."""
    return json_format.MessageToDict(message, including_default_value_fields=True)


def from_json(body: bytes, message_type: type[Message]) -> Message | Undecodable:
    """``body`` parsed as the canonical JSON of ``message_type``; unknown fields are errors."""
    name = message_type.DESCRIPTOR.name
    try:
        raw = json.loads(body or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return Undecodable(
            name, "body", f"is not JSON ({type(exc).__name__} at byte {getattr(exc, 'pos', 0)})"
        )
    if not isinstance(raw, dict):
        return Undecodable(name, "body", f"must be a JSON object (a {name}), got {type(raw).__name__}")
    try:
        return json_format.ParseDict(raw, message_type())
    except json_format.ParseError as exc:
        detail = str(exc)
        if len(detail) > _PARSE_DETAIL_CHARS:
            detail = detail[:_PARSE_DETAIL_CHARS] + "..."
        return Undecodable(name, "body", f"is not a valid {name}: {detail}")


def error_body(code: Code, message: str, http_status: int | None = None, retry_ms: int | None = None) -> dict:
    error: dict[str, Any] = {"code": http_status or code.http, "status": code.name, "message": message}
    if retry_ms is not None:
        error["retryAfterMs"] = retry_ms
    return {"error": error}


def error_response(exc: BaseException) -> web.Response:
    """The one JSON error shape, its HTTP status from the one error table."""
    code, message = to_status(exc)
    retry_ms = retry_after_ms(exc)
    headers = {"Retry-After": str(max(1, math.ceil(retry_ms / 1000)))} if retry_ms is not None else None
    return web.json_response(error_body(code, message, retry_ms=retry_ms), status=code.http, headers=headers)


# aiohttp's own answers (no route, wrong method, body too large) in the same shape.
_HTTP_CODES = {
    400: Code.INVALID_ARGUMENT,
    404: Code.NOT_FOUND,
    405: Code.UNIMPLEMENTED,
    413: Code.INVALID_ARGUMENT,
}


@web.middleware
async def _errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, Code.UNKNOWN)
        message = {
            404: f"no such path {quote(request.path)}; see /openapi.json",
            405: f"{request.method} is not allowed on {quote(request.path)}",
        }.get(exc.status, exc.reason)
        if exc.status == 413:
            message = f"body: the request body is larger than the limit of {request.app[_MAX_BYTES]} bytes"
        return web.json_response(error_body(code, message, exc.status), status=exc.status)


def _peer_identity(request: web.Request) -> str | None:
    """The verified client certificate's identity (mTLS), from the TLS layer."""
    cert = request.transport.get_extra_info("peercert") if request.transport else None
    if not cert:
        return None
    sans = tuple(value for kind, value in cert.get("subjectAltName", ()))
    spiffe = next(
        (v for k, v in cert.get("subjectAltName", ()) if k == "URI" and v.startswith("spiffe://")), None
    )
    common_name = next((v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"), None)
    return certificate_identity(spiffe, common_name, sans)


class HttpTransport:
    """The API over HTTP/JSON (aiohttp, on the gateway's event loop); ``start()`` returns the port."""

    def __init__(
        self,
        settings: Settings,
        api: EmotionApi,
        gatekeeper: Gatekeeper,
        reloader: Reloader,
        serving: Callable[[], bool],
    ) -> None:
        self.settings = settings
        self.api = api
        self.gatekeeper = gatekeeper
        self.serving = serving
        self._ssl = _TlsContexts(settings, reloader) if settings.tls_cert_file else None
        self._open = 0  # requests being handled: bounded like gRPC's max_concurrent_rpcs
        self._runner: web.AppRunner | None = None
        self._openapi = json.dumps(openapi_document()).encode()
        self.port: int | None = None
        self.app = self._build()

    def _build(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.max_message_bytes, middlewares=[_errors])
        app[_MAX_BYTES] = self.settings.max_message_bytes
        routes = [
            web.post("/v1/classify", self._unary("Classify")),
            web.post("/v1/classify/batch", self._unary("ClassifyBatch")),
            web.post("/v1/analyze", self._unary("Analyze")),
            web.post("/v1/feedback", self._unary("SubmitFeedback")),
            web.get("/v1/models", self._unary("ListModels")),
            web.get("/v1/models/{model}", self._unary("GetModel")),
            web.get("/v1/stream", self._stream),
            web.get("/v1/health", self._health),
            web.get("/openapi.json", self._openapi_json),
            web.get("/", self._to_playground),
            web.get("/playground", self._to_playground),
            web.get("/playground/", self._asset),
            web.get("/playground/{name}", self._asset),
        ]
        app.add_routes(routes)
        return app

    # -- calls ---------------------------------------------------------------------------------

    def _credentials(self, request: web.Request) -> Credentials:
        identity = _peer_identity(request) if self.gatekeeper.authenticator.mtls else None
        return Credentials("http", request.headers.get("Authorization"), identity, request.remote or "")

    def _remaining_s(self, request: web.Request) -> float | None:
        raw = request.headers.get("X-Timeout-Ms")
        if raw is None:
            return None
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < 0:
            raise InvalidArgument("X-Timeout-Ms", f"must be a number of milliseconds >= 0, got {quote(raw)}")
        return value / 1000

    def _unary(self, method: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        request_type = UNARY_METHODS[method][0]

        async def handle(request: web.Request) -> web.Response:
            started = time.perf_counter()
            credentials = self._credentials(request)
            call, refusal = self.gatekeeper.begin(method, credentials)
            received = 0
            code, size = Code.UNKNOWN, 0
            token = None
            try:
                if refusal is not None:
                    raise refusal
                if self._open >= self.settings.max_concurrent_rpcs:
                    raise Overloaded(
                        f"the gateway handles {self.settings.max_concurrent_rpcs} calls at once",
                        self.settings.retry_after_ms,
                    )
                self._open += 1
                try:
                    token = enter_call(call)  # type: ignore[arg-type]
                    message, received = await self._decode(request, request_type)
                    remaining = self._remaining_s(request)
                    response = await self.api.call(method, message, remaining)
                finally:
                    self._open -= 1
                reply = web.Response(
                    body=json.dumps(to_json(response), separators=(",", ":")).encode(),
                    content_type="application/json",
                )
                code, size = Code.OK, len(reply.body)  # type: ignore[arg-type]
                return reply
            except GatewayError as exc:
                code = to_status(exc)[0]
                return error_response(exc)
            except web.HTTPException as exc:  # aiohttp's own refusal (a body over the limit): the
                code = _HTTP_CODES.get(exc.status, Code.UNKNOWN)  # middleware answers it; the
                raise  # audit line and metrics get its code
            except asyncio.CancelledError:
                code = Code.CANCELLED
                raise
            finally:
                if token is not None:
                    leave_call(token)
                self.gatekeeper.end(call, method, credentials, code, started, (received, size))

        return handle

    async def _decode(
        self, request: web.Request, request_type: type[Message]
    ) -> tuple[Message | Undecodable, int]:
        """The request message (from the path for the GET methods, else the body) and its bytes."""
        if request_type is pb.ListModelsRequest:
            return pb.ListModelsRequest(), 0
        if request_type is pb.GetModelRequest:
            return pb.GetModelRequest(model=request.match_info["model"]), 0
        body = await request.read()
        return from_json(body, request_type), len(body)

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        """ClassifyStream over a WebSocket: one JSON ClassifyStreamRequest per text frame in, one
        ClassifyStreamResponse per message out, in arrival order. The socket is the stream:
        close it when you have your answers (unanswered messages are dropped)."""
        started = time.perf_counter()
        credentials = self._credentials(request)
        call, refusal = self.gatekeeper.begin("ClassifyStream", credentials)
        if refusal is not None:
            self.gatekeeper.end(call, "ClassifyStream", credentials, to_status(refusal)[0], started, (0, 0))
            return error_response(refusal)
        ws = web.WebSocketResponse(max_msg_size=self.settings.max_message_bytes)
        await ws.prepare(request)
        received, sent, code = [0], 0, Code.OK
        token = enter_call(call)  # type: ignore[arg-type]

        async def messages() -> AsyncIterator[Message | Undecodable]:
            async for frame in ws:
                if frame.type == WSMsgType.TEXT:
                    received[0] += len(frame.data)
                    yield from_json(frame.data.encode(), pb.ClassifyStreamRequest)
                elif frame.type == WSMsgType.BINARY:
                    received[0] += len(frame.data)
                    yield Undecodable("ClassifyStreamRequest", "message", "must be a text frame of JSON")
                else:
                    break

        try:
            async for response in self.api.stream(lambda: None).run(messages()):
                data = json.dumps(to_json(response), separators=(",", ":"))
                sent += len(data)
                await ws.send_str(data)
        except GatewayError as exc:
            code = to_status(exc)[0]
            await ws.close(code=1011, message=to_status(exc)[1].encode()[:120])
        except (ConnectionResetError, asyncio.CancelledError):
            code = Code.CANCELLED
            raise
        finally:
            leave_call(token)
            self.gatekeeper.end(call, "ClassifyStream", credentials, code, started, (received[0], sent))
            if not ws.closed:
                await ws.close()
        return ws

    # -- pages ---------------------------------------------------------------------------------

    async def _health(self, request: web.Request) -> web.Response:
        serving = self.serving()
        return web.json_response(
            {"status": "SERVING" if serving else "NOT_SERVING"}, status=200 if serving else 503
        )

    async def _openapi_json(self, request: web.Request) -> web.Response:
        return web.Response(body=self._openapi, content_type="application/json")

    async def _to_playground(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/playground/")

    async def _asset(self, request: web.Request) -> web.Response:
        name = request.match_info.get("name", "index.html")
        path = _PLAYGROUND / name
        suffix = "." + name.rsplit(".", 1)[-1] if "." in name else ""
        if "/" in name or name.startswith(".") or suffix not in _ASSET_TYPES or not path.is_file():
            raise web.HTTPNotFound()
        return web.Response(
            body=path.read_bytes(),
            content_type=_ASSET_TYPES[suffix],
            headers={"Cache-Control": "no-cache", "Content-Security-Policy": "default-src 'self'"},
        )

    # -- life cycle ----------------------------------------------------------------------------

    async def start(self) -> int:
        # No access log: aiohttp's would be a second, different audit line (the Gatekeeper's is it).
        self._runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, shutdown_timeout=self.settings.shutdown_grace_s
        )
        await self._runner.setup()
        host, _, port = self.settings.http_listen.rpartition(":")
        site = web.TCPSite(
            self._runner,
            host.strip("[]") or None,
            int(port),
            ssl_context=self._ssl.context if self._ssl else None,
        )
        await site.start()
        server = site._server  # the bound port, when 0 was asked for
        self.port = server.sockets[0].getsockname()[1] if server and server.sockets else int(port)
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class _Rotating(ssl.SSLContext):
    """An SSL context that hands each new connection to the newest context (asyncio wraps every
    accepted connection with ``wrap_bio``); connections already open keep theirs."""

    current: ssl.SSLContext

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:  # type: ignore[override]
        return self.current.wrap_bio(*args, **kwargs)


class _TlsContexts:
    """The HTTPS context, its certificate, key and client CA re-read when they change."""

    def __init__(self, settings: Settings, reloader: Reloader) -> None:
        self.settings = settings
        self.context = _Rotating(ssl.PROTOCOL_TLS_SERVER)
        self.context.current = self._build()
        paths = [settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file]
        reloader.add("TLS certificate (HTTP)", paths, self.reload, settings.credentials_poll_s)

    def _build(self) -> ssl.SSLContext:
        s = self.settings
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(s.tls_cert_file, s.tls_key_file)
        if s.tls_client_ca_file:
            context.load_verify_locations(s.tls_client_ca_file)
            context.verify_mode = ssl.CERT_REQUIRED
        return context

    def reload(self) -> bool:
        try:
            self.context.current = self._build()
        except (OSError, ssl.SSLError) as exc:
            log.error("TLS files not reloaded for HTTP, keeping the previous ones: %s", type(exc).__name__)
            return False
        log.info("TLS certificate files reloaded (HTTP)")
        return True
