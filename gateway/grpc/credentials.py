"""TLS credentials of the gRPC port, re-read when the certificate, key or client CA change."""

from __future__ import annotations

import logging
from pathlib import Path

import grpc

from gateway.reloading import Reloader
from gateway.settings import Settings

log = logging.getLogger(__name__)


class CertificateReloader:
    """TLS server credentials whose certificate, key and client CA are re-read when they change.

    The process's :class:`gateway.reloading.Reloader` notices a change and reads the files
    (:meth:`reload`); gRPC asks for the configuration at each new handshake and gets the new
    one once; connections already open keep theirs. Files that cannot be read keep the
    previous configuration; a half-written pair (a key that does not match its certificate)
    fails handshakes until the rest of the rotation lands and is read in turn.
    """

    def __init__(self, settings: Settings, reloader: Reloader | None = None) -> None:
        self.settings = settings
        self.reloads = 0
        self._pending: grpc.ServerCertificateConfiguration | None = None
        if reloader is not None:
            paths = [settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file]
            reloader.add("TLS certificate (gRPC)", paths, self.reload, settings.credentials_poll_s)

    def _configuration(self) -> grpc.ServerCertificateConfiguration:
        s = self.settings
        key, chain = Path(s.tls_key_file).read_bytes(), Path(s.tls_cert_file).read_bytes()
        roots = Path(s.tls_client_ca_file).read_bytes() if s.tls_client_ca_file else None
        return grpc.ssl_server_certificate_configuration([(key, chain)], root_certificates=roots)

    def reload(self) -> bool:
        """Read the files; the next handshake uses them. False (and the old ones stay) when unreadable."""
        try:
            self._pending = self._configuration()
        except OSError as exc:
            log.error("TLS files not reloaded, keeping the previous ones: %s", exc)
            return False
        self.reloads += 1
        log.info("TLS certificate files reloaded")
        return True

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        configuration, self._pending = self._pending, None
        return configuration

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self._configuration(),
            self._fetch,
            require_client_authentication=bool(self.settings.tls_client_ca_file),
        )
