"""The broker of the security modules (test_security.py, test_cli_security.py): PEM material
from deploy/security/make-certs.sh, and one broker with a listener of each kind beside PLAINTEXT:
SSL, MTLS (SSL requiring client certificates, its key and chain given inline), SASL_PLAINTEXT and
SASL_SSL (PLAIN users alice and admin, SCRAM-SHA-256 and SCRAM-SHA-512 from
AlterUserScramCredentials).

A module imports the fixtures it uses (`certs`, `foreign_certs`, `secure`, and the autouse
`_report_broker`); each importing module gets its own broker.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

import support
from support import HOST, Broker

ROOT = Path(__file__).resolve().parents[2]
MAKE_CERTS = ROOT / "deploy" / "security" / "make-certs.sh"
USERS = {"alice": "alice-secret", "admin": "admin-secret"}
JAAS = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
        + " ".join(f'user_{user}="{password}"' for user, password in USERS.items()) + ";")
KINDS = ["SSL", "MTLS", "SASL_PLAINTEXT", "SASL_SSL"]
# The mechanisms the module's SASL listeners enable, as SaslHandshake lists them.
ENABLED = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


def make_certs(directory: Path, hosts: str = f"localhost {HOST}") -> Path:
    """A CA and certificates signed by it; the broker's names `hosts`."""
    subprocess.run(["bash", str(MAKE_CERTS), str(directory)], check=True, capture_output=True,
                   env={"PATH": "/usr/bin:/bin", "HOSTS": hosts})
    return directory


def listener_overrides(broker: Broker, protocols: dict[str, str]) -> dict[str, str]:
    """Overrides giving `broker` a listener of each name in `protocols` (name: security protocol)
    on a free port (kept in `broker.ports`), beside PLAINTEXT (between brokers) and CONTROLLER."""
    broker.ports = {name: support.free_port() for name in protocols}
    listeners = ",".join(f"{name}://{HOST}:{port}" for name, port in broker.ports.items())
    return {
        "listeners": (f"PLAINTEXT://{HOST}:{broker.port},{listeners},"
                      f"CONTROLLER://{HOST}:{broker.controller_port}"),
        "advertised.listeners": f"PLAINTEXT://{HOST}:{broker.port},{listeners}",
        "listener.security.protocol.map": ",".join(
            ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"]
            + [f"{name}:{protocol}" for name, protocol in protocols.items()]),
        "inter.broker.listener.name": "PLAINTEXT",
    }


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Path:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def foreign_certs(tmp_path_factory) -> Path:
    """Material from another CA, which the broker does not trust (nor its clients the broker)."""
    return make_certs(tmp_path_factory.mktemp("foreign-certs"))


@pytest.fixture(scope="module")
def secure(tmp_path_factory, certs):
    """The module's broker: PLAINTEXT (between brokers) plus a listener of each kind, by kind."""
    broker = Broker(tmp_path_factory.mktemp("security"))
    broker.overrides.update(listener_overrides(broker, {
        "SSL": "SSL", "MTLS": "SSL", "SASL_PLAINTEXT": "SASL_PLAINTEXT", "SASL_SSL": "SASL_SSL"}))
    broker.overrides.update({
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(certs / "broker.pem"),
        # The MTLS listener takes its key apart from its chain, and asks for client certificates.
        "listener.name.mtls.ssl.keystore.location": "",
        "listener.name.mtls.ssl.keystore.key": (certs / "broker-key.pem").read_text(),
        "listener.name.mtls.ssl.keystore.certificate.chain": (certs / "broker-cert.pem").read_text(),
        "listener.name.mtls.ssl.client.auth": "required",
        "listener.name.mtls.ssl.truststore.type": "PEM",
        "listener.name.mtls.ssl.truststore.location": str(certs / "ca.pem"),
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": JAAS,
        "listener.name.sasl_ssl.plain.sasl.jaas.config": JAAS,
    })
    broker.start()
    yield broker
    broker.kill()


@pytest.fixture(autouse=True)
def _report_broker(request):
    """Puts the module's broker log in every failure report (conftest reports started brokers)."""
    support.report_module_broker(request, "secure")


def librdkafka_config(kind: str, certs: Path, password: str = USERS["alice"]) -> dict[str, str]:
    """librdkafka settings (kcat -X, confluent-kafka) for a listener of `kind`."""
    config: dict[str, str] = {}
    if kind in ("SSL", "MTLS", "SASL_SSL"):
        config["security.protocol"] = "SSL" if kind != "SASL_SSL" else "SASL_SSL"
        config["ssl.ca.location"] = str(certs / "ca.pem")
    if kind == "MTLS":
        config["ssl.certificate.location"] = str(certs / "client-cert.pem")
        config["ssl.key.location"] = str(certs / "client-key.pem")
    if kind.startswith("SASL"):
        config.setdefault("security.protocol", "SASL_PLAINTEXT")
        config.update({"sasl.mechanisms": "PLAIN", "sasl.username": "alice",
                       "sasl.password": password})
    return config


def librdkafka_attempt(address: str, config: dict) -> tuple[str | None, list[str]]:
    """The cluster id a confluent-kafka client gets from `address`, or None, and the errors its
    error callback reported."""
    from confluent_kafka import KafkaException, Producer

    errors: list[str] = []
    producer = Producer({"bootstrap.servers": address,
                         "error_cb": lambda error: errors.append(str(error)), **config})
    try:
        return producer.list_topics(timeout=3).cluster_id, errors
    except KafkaException:
        # The error callback is served by poll.
        deadline = time.monotonic() + 5
        while not errors and time.monotonic() < deadline:
            producer.poll(0.1)
        return None, errors
