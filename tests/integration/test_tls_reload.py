"""Certificates replaced without a restart (KIP-226's dynamic listener configs): pointing a
listener's `ssl.keystore.location` at new material with `flink-configs.sh --entity-type brokers`,
or rewriting the file it names, is taken up by new connections within seconds; confluent-kafka
clients trusting only the new CA get in, those trusting only the old one no longer do, and
material that does not load leaves the previous one in use.
"""

from __future__ import annotations

import shutil
import time

import support
from security_support import make_certs
from support import HOST, Broker, run_script

RELOAD_WAIT_S = 10


def reaches(port: int, ca) -> bool:
    """Whether a confluent-kafka admin client trusting only `ca` can list the topics."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient
    client = AdminClient({"bootstrap.servers": f"{HOST}:{port}", "security.protocol": "SSL",
                          "ssl.ca.location": str(ca)})
    try:
        client.list_topics(timeout=4)
        return True
    except KafkaException:
        return False


def eventually_reaches(port: int, ca, wanted: bool) -> None:
    deadline = time.monotonic() + RELOAD_WAIT_S
    while reaches(port, ca) != wanted:
        assert time.monotonic() < deadline, f"reaching with {ca} is not {wanted}"
        time.sleep(0.5)


def test_listener_certificates_reload(tmp_path):
    for name in ("old", "new", "broker"):
        (tmp_path / name).mkdir()
    old, new = make_certs(tmp_path / "old"), make_certs(tmp_path / "new")
    keystore = tmp_path / "broker" / "listener.pem"
    shutil.copy(old / "broker.pem", keystore)
    broker = Broker(tmp_path / "broker")
    ssl_port = support.free_port()
    broker.overrides.update({
        "listeners": (f"PLAINTEXT://{HOST}:{broker.port},SSL://{HOST}:{ssl_port},"
                      f"CONTROLLER://{HOST}:{broker.controller_port}"),
        "advertised.listeners": f"PLAINTEXT://{HOST}:{broker.port},SSL://{HOST}:{ssl_port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SSL:SSL,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(keystore),
    })
    broker.start()
    try:
        assert reaches(ssl_port, old / "ca.pem")
        assert not reaches(ssl_port, new / "ca.pem")

        # The dynamic config: this broker's listener now uses the new material.
        run_script("flink-configs.sh", "--bootstrap-server", broker.bootstrap, "--alter",
                   "--entity-type", "brokers", "--entity-name", "1", "--add-config",
                   f"listener.name.ssl.ssl.keystore.location={new / 'broker.pem'}")
        # Each shard takes the change up on its own, for its next connection.
        eventually_reaches(ssl_port, new / "ca.pem", True)
        eventually_reaches(ssl_port, old / "ca.pem", False)
        broker.wait_for_log("listener SSL: TLS material reloaded")

        # The file rewritten in place: the old material again.
        shutil.copy(old / "broker.pem", new / "broker.pem")
        eventually_reaches(ssl_port, old / "ca.pem", True)

        # Material that does not load is refused; the current one stays.
        (new / "broker.pem").write_text("not a PEM file\n")
        broker.wait_for_log("new TLS material not used", timeout=RELOAD_WAIT_S)
        assert reaches(ssl_port, old / "ca.pem")
    finally:
        broker.kill()
