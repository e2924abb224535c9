"""A local certificate authority and a server certificate for `localhost` and `127.0.0.1`.

Made on first start in the data dir and reused, so clients trust commgrid once (REQUESTS_CA_BUNDLE,
SSL_CERT_FILE, or `connection_verify=`). The Communication Services SDKs only speak HTTPS.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path
    cert: Path
    key: Path


def tls_files(data_dir: Path) -> TlsFiles:
    tls = data_dir / "tls"
    return TlsFiles(ca_cert=tls / "ca.pem", cert=tls / "server.pem", key=tls / "server-key.pem")


def ensure_certificates(data_dir: Path, extra_hosts: tuple[str, ...] = (),
                        ca: tuple[Path, Path] | None = None) -> TlsFiles:
    """Create the CA and server certificate if absent; return their paths.

    With `ca` (a CA certificate and its private key, PEM), the server certificate is issued by that CA, made
    anew when the current one was issued by another, and `ca.pem` is a copy of it: clients that trust it
    once keep trusting every commgrid started with it (a pinned CA for `.env` files and CI).
    """
    files = tls_files(data_dir)
    pinned = _load_ca(*ca) if ca else None
    present = files.ca_cert.exists() and files.cert.exists() and files.key.exists()
    if present and (pinned is None or files.ca_cert.read_bytes() == pinned[0].public_bytes(serialization.Encoding.PEM)):
        return files
    files.ca_cert.parent.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = pinned or new_ca()
    key, cert = _server_certificate(ca_cert, ca_key, extra_hosts)
    files.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
    files.key.chmod(0o600)
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    return files


def new_ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed CA, valid for ten years."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "commgrid local CA")])
    now = dt.datetime.now(dt.UTC)
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return ca_cert, ca_key


def write_ca(directory: Path) -> tuple[Path, Path]:
    """A new CA written as `ca.pem` and `ca-key.pem` (0600) in `directory`, for `serve --ca-cert/--ca-key`."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = new_ca()
    cert_path, key_path = directory / "ca.pem", directory / "ca-key.pem"
    key_path.touch(mode=0o600)
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def _load_ca(cert_path: Path, key_path: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        raise ValueError(f"{key_path} is not the EC private key of the CA certificate {cert_path}.")
    return cert, key


def _server_certificate(ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey,
                        extra_hosts: tuple[str, ...]) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                     x509.IPAddress(ipaddress.ip_address("::1"))]
    for host in extra_hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert
