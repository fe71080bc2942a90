"""A throwaway certificate authority for the local HTTPS servers (Key Vault, fake Azure DevOps).

`ensure_local_ca(folder)` creates, once, a CA certificate (`ca.pem`) and a server certificate for
127.0.0.1 and localhost signed by it (`server.pem`, `server-key.pem`). Clients trust `ca.pem`;
servers load the pair. Nothing here is used in Azure.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class LocalCertificates:
    """Paths of the local CA certificate and of the server certificate and key it signed."""

    ca_path: Path
    cert_path: Path
    key_path: Path

    def server_context(self) -> ssl.SSLContext:
        """Build a TLS server context that presents the local server certificate."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert_path, self.key_path)
        return context


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "stackhook local development")])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def ensure_local_ca(folder: Path | str) -> LocalCertificates:
    """Create the local CA and server certificate in `folder` unless they already exist."""
    folder = Path(folder)
    certificates = LocalCertificates(folder / "ca.pem", folder / "server.pem", folder / "server-key.pem")
    if all(path.exists() for path in (certificates.ca_path, certificates.cert_path, certificates.key_path)):
        return certificates
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=825)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_certificate = (
        x509.CertificateBuilder()
        .subject_name(_name("stackhook local CA")).issuer_name(_name("stackhook local CA"))
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    server_key = ec.generate_private_key(ec.SECP256R1())
    server_certificate = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost")).issuer_name(ca_certificate.subject)
        .public_key(server_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
        ]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    certificates.ca_path.write_bytes(ca_certificate.public_bytes(serialization.Encoding.PEM))
    certificates.cert_path.write_bytes(server_certificate.public_bytes(serialization.Encoding.PEM))
    _write_key(certificates.key_path, server_key)
    return certificates
