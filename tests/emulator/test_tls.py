"""The self-made CA and server certificate."""

from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path

import pytest
import requests
from cryptography import x509

from emulator.testing import RunningEmulator
from emulator.tls import ensure_certificates


def test_certificates_are_created_once_and_reused(tmp_path: Path) -> None:
    files = ensure_certificates(tmp_path)
    ca_pem = files.ca_cert.read_bytes()
    leaf = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert files.server_key.stat().st_mode & 0o077 == 0

    assert ensure_certificates(tmp_path).ca_cert.read_bytes() == ca_pem


def test_broken_certificates_are_regenerated(tmp_path: Path) -> None:
    files = ensure_certificates(tmp_path)
    ca_pem = files.ca_cert.read_bytes()
    files.server_cert.write_text("not a certificate")
    again = ensure_certificates(tmp_path)
    assert again.ca_cert.read_bytes() != ca_pem
    x509.load_pem_x509_certificate(again.server_cert.read_bytes())


def test_clients_trust_the_ca_and_nothing_else(emulator: RunningEmulator) -> None:
    ok = requests.get(f"{emulator.url}/_emulator/health", verify=emulator.ca_bundle, timeout=30)
    assert ok.status_code == 200
    localhost = emulator.url.replace("127.0.0.1", "localhost")
    assert requests.get(f"{localhost}/_emulator/health", verify=emulator.ca_bundle, timeout=30).ok
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(
            f"{emulator.url}/_emulator/health",
            verify=ssl.get_default_verify_paths().cafile or True,
            timeout=30,
        )


def test_plain_http_is_not_served(emulator: RunningEmulator) -> None:
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(emulator.url.replace("https://", "http://") + "/_emulator/health", timeout=30)
