"""deploy/docker-compose.sasl-ssl.yml: one combined node whose client listener is SASL_SSL, with
certificates from deploy/security/make-certs.sh mounted read-only and a SCRAM-SHA-512 user the
entrypoint formats the storage with (FLINK_ADD_SCRAM).

From the host, trusting the generated CA: confluent-kafka produces and reads back as that user;
the dist's tools do the same with the README's client properties; a client without credentials
and one with a wrong password are refused. One container, from the image test_docker builds.

Skipped, with the reason printed, where Docker is not available (test_docker's check). The compose
file runs from a copy with a unique container name and the host port on loopback (a free one,
which the advertised listener names too), so it cannot collide with anything else.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from test_docker import (DEPLOY, DOCKER_TIMEOUT_S, compose_command, container_logs,  # noqa: F401
                         describe, image, unique_name, wait_until_started, write_compose_copy)
from security_support import librdkafka_attempt, make_certs
from support import free_port, run_script
from test_security import confluent_round_trip, values

SASL_SSL_FILE = DEPLOY / "docker-compose.sasl-ssl.yml"
USER, PASSWORD = "alice", "alice-secret"
TOPIC = "sasl-ssl-topic"
LINES = [f"line-{index}" for index in range(20)]


def client_properties(certs: Path) -> str:
    """The README's client properties file, trusting `certs`' CA."""
    return ("security.protocol=SASL_SSL\n"
            "ssl.truststore.type=PEM\n"
            f"ssl.truststore.location={certs / 'ca.pem'}\n"
            "sasl.mechanism=SCRAM-SHA-512\n"
            "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{USER}" password="{PASSWORD}";\n')


def librdkafka_settings(certs: Path, password: str | None = PASSWORD) -> dict[str, str]:
    """confluent-kafka's settings: TLS trusting `certs`' CA, with SCRAM-SHA-512 unless
    `password` is None."""
    if password is None:
        return {"security.protocol": "SSL", "ssl.ca.location": str(certs / "ca.pem")}
    return {"security.protocol": "SASL_SSL", "ssl.ca.location": str(certs / "ca.pem"),
            "sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": USER, "sasl.password": password}


def test_compose_sasl_ssl(tmp_path):
    """The SASL_SSL compose file starts with the generated certificates; its user produces and
    consumes from the host with confluent-kafka and with the tools; no credentials, or a wrong
    password, get nothing."""
    compose = compose_command()
    shipped = SASL_SSL_FILE.read_text()
    for expected in ["container_name: broker-sasl-ssl\n", "- 9094:9094\n",
                     "- ./certs:/etc/flink/certs:ro\n", "SASL_SSL://localhost:9094,",
                     "INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT\n",
                     "FLINK_INTER_BROKER_LISTENER_NAME: INTERNAL\n",
                     "- seccomp=./seccomp-io_uring.json\n", "memlock: -1\n"]:
        assert expected in shipped, f"{SASL_SSL_FILE} lacks {expected!r}"

    name = unique_name("sasl-ssl")
    port = free_port()
    text = (shipped.replace("container_name: broker-sasl-ssl\n", f"container_name: {name}\n")
                   .replace("- 9094:9094\n", f"- 127.0.0.1:{port}:9094\n")
                   .replace("SASL_SSL://localhost:9094,", f"SASL_SSL://localhost:{port},"))
    write_compose_copy(tmp_path, text)
    certs = make_certs(tmp_path / "certs")
    # The container's user (uid 1000) reads the mounted directory; pytest makes its own 0700.
    certs.chmod(0o755)
    properties = tmp_path / "client.properties"
    properties.write_text(client_properties(certs))
    bootstrap = f"localhost:{port}"

    project = ["-p", f"flinksasl{os.getpid()}"]

    def run_compose(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*compose, *project, *args], cwd=tmp_path, capture_output=True,
                              text=True, timeout=DOCKER_TIMEOUT_S, stdin=subprocess.DEVNULL)

    try:
        up = run_compose("up", "-d")
        assert up.returncode == 0, describe(up)
        wait_until_started(name)
        logs = container_logs(name)
        assert "proposing the bootstrap metadata" in logs, logs

        created = run_script("flink-topics.sh", "--bootstrap-server", bootstrap,
                             "--command-config", str(properties), "--create", "--topic", TOPIC,
                             "--partitions", "1")  # Read back in order.
        assert f"Created topic {TOPIC}." in created.stdout, created.stdout
        assert confluent_round_trip(bootstrap, TOPIC, librdkafka_settings(certs)) == (
            values("confluent"))
        run_script("flink-console-producer.sh", "--bootstrap-server", bootstrap, "--topic", TOPIC,
                   "--producer.config", str(properties), input="".join(f"{line}\n" for line in LINES))
        consumed = run_script("flink-console-consumer.sh", "--bootstrap-server", bootstrap,
                              "--topic", TOPIC, "--consumer.config", str(properties),
                              "--from-beginning", "--max-messages",
                              str(len(values("confluent")) + len(LINES))).stdout.split()
        assert consumed == values("confluent") + LINES, consumed

        cluster_id, errors = librdkafka_attempt(bootstrap, librdkafka_settings(certs, None))
        assert cluster_id is None, errors
        cluster_id, errors = librdkafka_attempt(bootstrap, librdkafka_settings(certs, "wrong"))
        assert cluster_id is None, errors
        assert any("Authentication failed" in error for error in errors), errors
    except AssertionError:
        print(f"===== docker logs {name} =====\n{container_logs(name)[-3000:]}")
        raise
    finally:
        run_compose("down", "-t", "5")
        subprocess.run(["docker", "rm", "-f", name], capture_output=True,
                       timeout=DOCKER_TIMEOUT_S)
