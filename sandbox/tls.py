"""Certificates for the sandbox: a throwaway CA and a server certificate for 127.0.0.1/localhost.

Generated with ``trustme`` at start and written to a temporary directory.  Clients trust the CA by
path: ``session.verify = ca_bundle`` **and** ``session.trust_env = False`` (requests lets the
``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` environment variables override ``verify`` otherwise —
psf/requests#3829).  Nothing here, or anywhere else, disables verification.
"""

from __future__ import annotations

import shutil
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass
class SandboxTLS:
    """A CA bundle on disk plus a server ``SSLContext`` whose certificate that CA signed."""

    directory: Path
    ca_bundle: Path
    server_cert: Path
    server_key: Path
    _owns_directory: bool = True

    @classmethod
    def create(cls, directory: Path | None = None) -> SandboxTLS:
        owns = directory is None
        d = directory or Path(tempfile.mkdtemp(prefix="kpisync-sandbox-tls-"))
        d.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA(organization_name="kpisync sandbox CA")
        cert = ca.issue_cert("127.0.0.1", "localhost", "::1")
        ca_path = d / "ca.pem"
        cert_path = d / "server-chain.pem"
        key_path = d / "server-key.pem"
        ca.cert_pem.write_to_path(str(ca_path))
        # The chain file holds the leaf then its issuer, as servers normally send it.
        with cert_path.open("wb") as f:
            for blob in cert.cert_chain_pems:
                f.write(blob.bytes())
        cert.private_key_pem.write_to_path(str(key_path))
        return cls(d, ca_path, cert_path, key_path, owns)

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(self.server_cert), str(self.server_key))
        return ctx

    def cleanup(self) -> None:
        if self._owns_directory:
            shutil.rmtree(self.directory, ignore_errors=True)
