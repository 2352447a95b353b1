"""The local CA and server certificates: their extensions, a real TLS handshake through Python's
ssl module on 127.0.0.1, the reuse decision and the private file writer."""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from headwater.stack import tls
from headwater.stack.tls import Pem

HOSTS = ["es.headwater.test", "10.1.2.3"]


@pytest.fixture(scope="module")
def ca() -> Pem:
    return tls.new_ca()


@pytest.fixture(scope="module")
def server(ca: Pem) -> Pem:
    return tls.new_server_cert(ca, HOSTS)


def load(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


# The certificates -----------------------------------------------------------------------------
def test_the_ca_is_a_self_signed_ca_that_signs_certificates(ca: Pem) -> None:
    cert = load(ca.cert)
    cert.verify_directly_issued_by(cert)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        "Headwater local CA"
    )
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert not usage.value.digital_signature
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime == timedelta(days=3650) + tls.BACKDATE
    assert cert.not_valid_before_utc <= datetime.now(UTC)


def test_the_server_certificate_names_every_host_and_is_a_server_leaf(ca: Pem, server: Pem) -> None:
    cert, ca_cert = load(server.cert), load(ca.cert)
    cert.verify_directly_issued_by(ca_cert)
    assert cert.issuer == ca_cert.subject
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["es.headwater.test", "localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.1.2.3"),
        ipaddress.ip_address("127.0.0.1"),
    ]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and not constraints.value.ca
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ca_ski.digest
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == HOSTS[0]
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime == timedelta(days=825) + tls.BACKDATE


def test_keys_are_unencrypted_pkcs8_p256_and_each_certificate_gets_its_own(
    ca: Pem, server: Pem
) -> None:
    for pem in (ca, server):
        assert pem.key.startswith(b"-----BEGIN PRIVATE KEY-----\n")
        key = serialization.load_pem_private_key(pem.key, password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        assert isinstance(key.curve, ec.SECP256R1)
        assert tls.key_matches(pem)
    assert not tls.key_matches(Pem(server.cert, ca.key))
    assert not tls.key_matches(Pem(b"not a certificate", server.key))
    again = tls.new_server_cert(ca, HOSTS)
    assert again.key != server.key
    assert load(again.cert).serial_number != load(server.cert).serial_number


def test_san_hosts_adds_the_defaults_once_and_normalises() -> None:
    assert tls.san_hosts([]) == ["localhost", "127.0.0.1"]
    assert tls.san_hosts(["ES.Local", " 127.0.0.1 ", "::0:1", "localhost"]) == [
        "es.local",
        "127.0.0.1",
        "::1",
        "localhost",
    ]
    with pytest.raises(ValueError, match="empty"):
        tls.san_hosts([" "])


def test_an_ipv6_host_is_an_ip_address_entry(ca: Pem) -> None:
    cert = load(tls.new_server_cert(ca, ["::1"]).cert)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("::1") in san.get_values_for_type(x509.IPAddress)
    assert "::1" not in san.get_values_for_type(x509.DNSName)


# A real handshake ----------------------------------------------------------------------------
@contextmanager
def tls_server(tmp_path: Path, pem: Pem) -> Iterator[int]:
    """A TLS server on 127.0.0.1 with `pem`, sending b"ok" to each client; yields its port."""
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    cert.write_bytes(pem.cert)
    tls.write_private(key, pem.key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(10)
                try:
                    with context.wrap_socket(conn, server_side=True) as secured:
                        secured.sendall(b"ok")
                except OSError:  # the client refused our certificate (SSLError is an OSError)
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(10)
        listener.close()


def client_context(cafile: Path, maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cafile))
    context.verify_flags |= ssl.VERIFY_X509_STRICT  # the default from Python 3.13
    if maximum is not None:
        context.maximum_version = maximum
    return context


def fetch(port: int, context: ssl.SSLContext, hostname: str) -> bytes:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=hostname) as secured,
    ):
        return secured.recv(2)


@pytest.mark.parametrize("hostname", ["127.0.0.1", "localhost", *HOSTS])
@pytest.mark.parametrize("maximum", [None, ssl.TLSVersion.TLSv1_2])
def test_a_client_trusting_the_ca_verifies_the_server(
    tmp_path: Path, ca: Pem, server: Pem, hostname: str, maximum: ssl.TLSVersion | None
) -> None:
    cafile = tmp_path / "ca.crt"
    cafile.write_bytes(ca.cert)
    with tls_server(tmp_path, server) as port:
        assert fetch(port, client_context(cafile, maximum), hostname) == b"ok"


def test_a_client_trusting_another_ca_or_asking_for_another_host_is_refused(
    tmp_path: Path, ca: Pem, server: Pem
) -> None:
    cafile, other_cafile = tmp_path / "ca.crt", tmp_path / "other.crt"
    cafile.write_bytes(ca.cert)
    other_cafile.write_bytes(tls.new_ca().cert)  # same name, another key
    with tls_server(tmp_path, server) as port:
        with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
            fetch(port, client_context(other_cafile), "127.0.0.1")
        with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
            fetch(port, client_context(cafile), "other.headwater.test")
        with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
            fetch(port, client_context(cafile), "10.1.2.4")
        assert fetch(port, client_context(cafile), "127.0.0.1") == b"ok"


# Reuse ---------------------------------------------------------------------------------------
def test_cert_covers_a_fresh_certificate_for_its_hosts_in_any_form(ca: Pem, server: Pem) -> None:
    assert tls.cert_covers(server.cert, ca.cert, HOSTS)
    assert tls.cert_covers(server.cert, ca.cert, [])
    assert tls.cert_covers(server.cert, ca.cert, ["ES.HEADWATER.TEST", "localhost", "127.0.0.1"])


def test_cert_covers_refuses_a_certificate_of_another_ca(server: Pem) -> None:
    same_name = tls.new_ca()  # issuer name matches; only the signature tells them apart
    assert load(same_name.cert).subject == load(server.cert).issuer
    assert not tls.cert_covers(server.cert, same_name.cert, HOSTS)
    assert not tls.cert_covers(server.cert, tls.new_ca("Another CA").cert, HOSTS)


def test_cert_covers_refuses_a_certificate_missing_a_host(ca: Pem, server: Pem) -> None:
    assert not tls.cert_covers(server.cert, ca.cert, [*HOSTS, "es2.headwater.test"])
    assert not tls.cert_covers(server.cert, ca.cert, ["10.1.2.4"])
    assert not tls.cert_covers(server.cert, ca.cert, ["::1"])


def test_cert_covers_refuses_a_certificate_expiring_within_min_days_left(
    ca: Pem, server: Pem
) -> None:
    today = datetime.now(UTC)
    assert tls.cert_covers(server.cert, ca.cert, HOSTS, now=today + timedelta(days=790))
    assert not tls.cert_covers(server.cert, ca.cert, HOSTS, now=today + timedelta(days=800))
    assert tls.cert_covers(
        server.cert, ca.cert, HOSTS, now=today + timedelta(days=800), min_days_left=20
    )
    assert not tls.cert_covers(server.cert, ca.cert, HOSTS, now=today + timedelta(days=900))
    # A naive `now` is UTC.
    naive = (today + timedelta(days=800)).replace(tzinfo=None)
    assert not tls.cert_covers(server.cert, ca.cert, HOSTS, now=naive)


def test_cert_covers_refuses_a_certificate_not_yet_valid_or_under_an_expiring_ca() -> None:
    short_ca = tls.new_ca(days=100)
    leaf = tls.new_server_cert(short_ca, HOSTS)
    today = datetime.now(UTC)
    assert tls.cert_covers(leaf.cert, short_ca.cert, HOSTS, now=today)
    assert not tls.cert_covers(leaf.cert, short_ca.cert, HOSTS, now=today + timedelta(days=80))
    assert not tls.cert_covers(leaf.cert, short_ca.cert, HOSTS, now=today - timedelta(days=1))


def test_cert_covers_refuses_unreadable_pem_and_the_ca_itself(ca: Pem, server: Pem) -> None:
    assert not tls.cert_covers(b"", ca.cert, HOSTS)
    assert not tls.cert_covers(server.cert, b"-----BEGIN CERTIFICATE-----\nxx\n", HOSTS)
    assert not tls.cert_covers(server.key, ca.cert, HOSTS)
    assert not tls.cert_covers(ca.cert, ca.cert, [])
    assert not tls.valid_for(b"garbage")


# The private file writer ---------------------------------------------------------------------
def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_private_makes_an_owner_only_file_and_its_parents(tmp_path: Path) -> None:
    path = tmp_path / "config" / "certs" / "http.key"
    previous = os.umask(0)  # the mode must not depend on a permissive umask
    try:
        tls.write_private(path, b"secret")
    finally:
        os.umask(previous)
    assert path.read_bytes() == b"secret"
    assert mode(path) == 0o600
    assert os.listdir(path.parent) == ["http.key"]


def test_write_private_replaces_a_looser_file_with_an_owner_only_one(tmp_path: Path) -> None:
    path = tmp_path / "http.key"
    path.write_bytes(b"an older, longer key")
    path.chmod(0o644)
    tls.write_private(path, b"new")
    assert path.read_bytes() == b"new"
    assert mode(path) == 0o600
    assert os.listdir(tmp_path) == ["http.key"]
