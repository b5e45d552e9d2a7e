"""Throw-away certificates (trustme) written as PEM files, for the web config and TLS tests."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography.hazmat.primitives import serialization


@dataclass(frozen=True)
class Pki:
    """A server CA, a server certificate for 127.0.0.1 and a client CA with one client."""

    directory: Path
    server_ca: trustme.CA
    client_ca: trustme.CA
    client: trustme.LeafCert

    server_cert: Path  # server.crt: the leaf and its chain
    server_key: Path  # server.key
    server_ca_file: Path  # server-ca.crt: what clients trust
    client_ca_file: Path  # client-ca.crt: what the server trusts for client certificates
    other_key: Path  # other.key: a key that matches no certificate here
    encrypted_key: Path  # encrypted.key: server.key under a password
    garbage: Path  # garbage.pem: no PEM at all

    def client_context(self, *, with_client_cert: bool = False) -> ssl.SSLContext:
        """A client context that trusts the server CA, optionally presenting the client cert."""
        context = ssl.create_default_context()
        self.server_ca.configure_trust(context)
        if with_client_cert:
            self.client.configure_cert(context)
        return context


def write_server_cert(ca: trustme.CA, cert_path: Path, key_path: Path) -> None:
    """Issue a 127.0.0.1 certificate from ``ca`` and write it (chain) and its key."""
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    cert_path.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    key_path.write_bytes(leaf.private_key_pem.bytes())


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    server_ca, client_ca = trustme.CA(), trustme.CA()
    write_server_cert(server_ca, directory / "server.crt", directory / "server.key")
    server_ca.cert_pem.write_to_path(str(directory / "server-ca.crt"))
    client_ca.cert_pem.write_to_path(str(directory / "client-ca.crt"))
    server_ca.issue_cert("127.0.0.1").private_key_pem.write_to_path(str(directory / "other.key"))
    key = serialization.load_pem_private_key((directory / "server.key").read_bytes(), None)
    (directory / "encrypted.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"key-password"),
        )
    )
    (directory / "garbage.pem").write_text("not a certificate\n")
    return Pki(
        directory=directory,
        server_ca=server_ca,
        client_ca=client_ca,
        client=client_ca.issue_cert("prometheus@example.com"),
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
        server_ca_file=directory / "server-ca.crt",
        client_ca_file=directory / "client-ca.crt",
        other_key=directory / "other.key",
        encrypted_key=directory / "encrypted.key",
        garbage=directory / "garbage.pem",
    )
