"""A local CA and server certificates for the secured stack's TLS listeners, as PEM.

Generation is pure (no I/O): keys are EC P-256 and private keys are unencrypted PKCS#8
("BEGIN PRIVATE KEY"), which both Python's ssl module and Elasticsearch's PEM reader accept.
`cert_covers` tells `stack up` whether files it made before can be kept; `write_private` is
the one helper that writes, so that a key is never readable by others, not even briefly.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Always in a server certificate: how the stack's own clients reach a local node.
DEFAULT_HOSTS = ("localhost", "127.0.0.1")
# Certificates start this long before they are made, for clocks slightly behind ours.
BACKDATE = timedelta(hours=1)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Pem:
    """A PEM certificate and its unencrypted PKCS#8 private key."""

    cert: bytes
    key: bytes


def _now(now: datetime | None) -> datetime:
    """`now` as an aware UTC datetime (a naive one is taken as UTC); the clock when None."""
    if now is None:
        return datetime.now(UTC)
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def san_hosts(hosts: list[str]) -> list[str]:
    """The hosts a server certificate names: `hosts` and the defaults, once each, in order.

    Names are lower-cased (DNS names are case-insensitive) and IP addresses normalised, so
    "::0:1" and "::1" are one entry. An empty host is a ValueError.
    """
    seen: dict[str, None] = {}
    for host in [*hosts, *DEFAULT_HOSTS]:
        host = host.strip()
        if not host:
            raise ValueError("a certificate host may not be empty")
        ip = _ip(host)
        seen[str(ip) if ip is not None else host.lower()] = None
    return list(seen)


def _general_name(host: str) -> x509.GeneralName:
    ip = _ip(host)
    return x509.IPAddress(ip) if ip is not None else x509.DNSName(host)


def _key_usage(signs_certificates: bool) -> x509.KeyUsage:
    """A CA signs certificates and revocation lists; a server only signs its handshakes."""
    return x509.KeyUsage(
        digital_signature=not signs_certificates,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signs_certificates,
        crl_sign=signs_certificates,
        encipher_only=False,
        decipher_only=False,
    )


def new_ca(common_name: str = "Headwater local CA", days: int = 3650) -> Pem:
    """A self-signed CA that may sign server certificates (but not other CAs)."""
    key = _new_key()
    name = _name(common_name)
    start = _now(None) - BACKDATE
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + BACKDATE + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            _key_usage(signs_certificates=True),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Pem(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def new_server_cert(ca: Pem, hosts: list[str], days: int = 825) -> Pem:
    """A TLS server certificate signed by `ca`, naming every host in `san_hosts(hosts)`.

    IP addresses become IPAddress entries and other hosts DNSName entries; the subject's
    common name is the first host (clients match the SANs, not the common name).
    """
    names = san_hosts(hosts)
    ca_cert = x509.load_pem_x509_certificate(ca.cert)
    ca_key = serialization.load_pem_private_key(ca.key, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError(f"unsupported CA key type: {type(ca_key).__name__}")
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    key = _new_key()
    start = _now(None) - BACKDATE
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(names[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + BACKDATE + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            _key_usage(signs_certificates=False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([_general_name(host) for host in names]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return Pem(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def valid_for(cert_pem: bytes, now: datetime | None = None, min_days_left: int = 30) -> bool:
    """Whether a PEM certificate has started and stays valid `min_days_left` days more.

    Unreadable PEM is False, so a damaged file is made again rather than an error.
    """
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        return False
    at = _now(now)
    left = cert.not_valid_after_utc - at
    return cert.not_valid_before_utc <= at and left >= timedelta(days=min_days_left)


def _sans(cert: x509.Certificate) -> set[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    names = {name.lower() for name in san.get_values_for_type(x509.DNSName)}
    return names | {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}


def cert_covers(
    cert_pem: bytes,
    ca_pem: bytes,
    hosts: list[str],
    now: datetime | None = None,
    min_days_left: int = 30,
) -> bool:
    """Whether an existing server certificate can be kept rather than made again.

    True when it was issued by that CA (issuer name and signature), names every host of
    `san_hosts(hosts)` among its SANs, and it and the CA are both valid for at least
    `min_days_left` more days. Unreadable PEM is False.
    """
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        ca_cert = x509.load_pem_x509_certificate(ca_pem)
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return (
        set(san_hosts(hosts)) <= _sans(cert)
        and valid_for(cert_pem, now, min_days_left)
        and valid_for(ca_pem, now, min_days_left)
    )


def key_matches(pem: Pem) -> bool:
    """Whether `pem.key` is the private key of `pem.cert` (a reused pair must still match)."""
    try:
        cert = x509.load_pem_x509_certificate(pem.cert)
        key = serialization.load_pem_private_key(pem.key, password=None)
    except (ValueError, TypeError):
        return False
    return cert.public_key() == key.public_key()


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path` with mode 0600, creating parent directories.

    The bytes go to a new 0600 file beside `path` that then replaces it, so the file is never
    readable by others, nor half-written, and an older, looser file's mode is not kept.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as file:
            os.fchmod(file.fileno(), 0o600)
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
