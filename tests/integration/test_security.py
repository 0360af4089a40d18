"""TLS and SASL listeners with real clients: SSL, SSL with client certificates required, and
SASL PLAIN over SASL_PLAINTEXT and SASL_SSL, each with kcat (Debian's librdkafka),
confluent-kafka (its own librdkafka), kafka-python, aiokafka and the Java client (kafka-clients
4.3); SCRAM-SHA-256 and SCRAM-SHA-512 with credentials set through AlterUserScramCredentials. Refusals: a wrong password, an unknown mechanism, no or an untrusted client certificate,
a client that does not trust the broker, plaintext to a TLS listener, a request before
authentication; each gets the client's usual error and a broker log line, and the broker keeps
serving the others.

One broker serves the module, with a listener of each kind (security_support.py); each test
uses topics of its own.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from pathlib import Path

import pytest

import support
from java_clients import versions
from kafka_wire import WireConnection
from security_support import (  # noqa: F401 (fixtures)
    ENABLED, KINDS, USERS, _report_broker, certs, foreign_certs, librdkafka_attempt,
    librdkafka_config, secure)
from support import HOST, Broker, create_topic, require_tool

RECORDS = 50
UNSUPPORTED_SASL_MECHANISM = 33
SASL_AUTHENTICATION_FAILED = 58
RESOURCE_NOT_FOUND = 91
UNACCEPTABLE_CREDENTIAL = 93


def values(tag: str) -> list[str]:
    return [f"{tag}-{index:03d}" for index in range(RECORDS)]


def kcat_round_trip(bootstrap: str, topic: str, config: dict[str, str]) -> list[str]:
    kcat = require_tool("kcat")
    options = [argument for key, value in config.items() for argument in ("-X", f"{key}={value}")]
    sent = values("kcat")
    subprocess.run([kcat, "-b", bootstrap, *options, "-P", "-t", topic, "-p", "0"],
                   input="\n".join(sent) + "\n", text=True, check=True, timeout=60,
                   capture_output=True)
    read = subprocess.run([kcat, "-b", bootstrap, *options, "-C", "-t", topic, "-o", "beginning",
                           "-e", "-q", "-f", "%s\n"], text=True, check=True, timeout=60,
                          capture_output=True)
    return read.stdout.split()


def confluent_round_trip(bootstrap: str, topic: str, config: dict[str, str]) -> list[str]:
    from confluent_kafka import Consumer, Producer

    producer = Producer({"bootstrap.servers": bootstrap, **config})
    for value in values("confluent"):
        producer.produce(topic, value.encode())
    assert producer.flush(30) == 0, "records left unsent"
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{topic}-reader",
                         "auto.offset.reset": "earliest", **config})
    consumer.subscribe([topic])
    read: list[str] = []
    deadline = time.monotonic() + 30
    while len(read) < RECORDS and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            read.append(message.value().decode())
    consumer.close()
    return read


def kafka_python_options(kind: str, certs: Path) -> dict:
    options: dict = {"security_protocol": {"MTLS": "SSL"}.get(kind, kind)}
    if kind in ("SSL", "MTLS", "SASL_SSL"):
        options["ssl_cafile"] = str(certs / "ca.pem")
    if kind == "MTLS":
        options["ssl_certfile"] = str(certs / "client-cert.pem")
        options["ssl_keyfile"] = str(certs / "client-key.pem")
    if kind.startswith("SASL"):
        options.update(sasl_mechanism="PLAIN", sasl_plain_username="alice",
                       sasl_plain_password=USERS["alice"])
    return options


def kafka_python_round_trip(bootstrap: str, topic: str, options: dict) -> list[str]:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    producer = KafkaProducer(bootstrap_servers=bootstrap, **options)
    for value in values("kafka-python"):
        producer.send(topic, value.encode(), partition=0)
    producer.flush(30)
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, consumer_timeout_ms=2000, **options)
    consumer.assign([TopicPartition(topic, 0)])
    consumer.seek_to_beginning()
    read = [message.value.decode() for message in consumer]
    consumer.close()
    return read


def aiokafka_options(kind: str, certs: Path) -> dict:
    from aiokafka.helpers import create_ssl_context

    options: dict = {"security_protocol": {"MTLS": "SSL"}.get(kind, kind)}
    if kind in ("SSL", "MTLS", "SASL_SSL"):
        mtls = kind == "MTLS"
        options["ssl_context"] = create_ssl_context(
            cafile=str(certs / "ca.pem"),
            certfile=str(certs / "client-cert.pem") if mtls else None,
            keyfile=str(certs / "client-key.pem") if mtls else None)
    if kind.startswith("SASL"):
        options.update(sasl_mechanism="PLAIN", sasl_plain_username="alice",
                       sasl_plain_password=USERS["alice"])
    return options


def aiokafka_round_trip(bootstrap: str, topic: str, options: dict) -> list[str]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    async def run() -> list[str]:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **options)
        await producer.start()
        try:
            for value in values("aiokafka"):
                await producer.send_and_wait(topic, value.encode(), partition=0)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap,
                                    auto_offset_reset="earliest", **options)
        await consumer.start()
        read: list[str] = []
        try:
            while len(read) < RECORDS:
                batch = await asyncio.wait_for(consumer.getmany(timeout_ms=500), 30)
                read += [message.value.decode() for messages in batch.values()
                         for message in messages]
        finally:
            await consumer.stop()
        return read

    return asyncio.run(run())


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("client", ["kcat", "confluent-kafka", "kafka-python", "aiokafka"])
def test_round_trip_over_each_listener(secure, certs, kind, client):
    """Each client produces 50 records and reads them back over an SSL listener, one that
    requires a client certificate (its key and chain given inline), SASL_PLAINTEXT and
    SASL_SSL with PLAIN."""
    topic = f"security-{kind.lower()}-{client}"
    create_topic(secure, topic)
    bootstrap = f"{HOST}:{secure.ports[kind]}"
    if client == "kcat":
        read = kcat_round_trip(bootstrap, topic, librdkafka_config(kind, certs))
    elif client == "confluent-kafka":
        read = confluent_round_trip(bootstrap, topic, librdkafka_config(kind, certs))
    elif client == "kafka-python":
        read = kafka_python_round_trip(bootstrap, topic, kafka_python_options(kind, certs))
    else:
        read = aiokafka_round_trip(bootstrap, topic, aiokafka_options(kind, certs))
    tag = {"confluent-kafka": "confluent"}.get(client, client)
    assert read == values(tag)


def java_config(path: Path, kind: str, certs: Path, password: str = USERS["alice"]) -> Path:
    lines = [f"security.protocol={ {'MTLS': 'SSL'}.get(kind, kind) }"]
    if kind in ("SSL", "MTLS", "SASL_SSL"):
        lines += ["ssl.truststore.type=PEM", f"ssl.truststore.location={certs / 'ca.pem'}"]
    if kind == "MTLS":
        lines += ["ssl.keystore.type=PEM", f"ssl.keystore.location={certs / 'client.pem'}"]
    if kind.startswith("SASL"):
        jaas = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
                f'username="alice" password="{password}";')
        lines += ["sasl.mechanism=PLAIN", f"sasl.jaas.config={jaas}"]
    path.write_text("\n".join(lines) + "\n")
    return path


@versions("4.3.0")
@pytest.mark.parametrize("kind", KINDS)
def test_java_client_over_each_listener(java, secure, certs, tmp_path, kind):
    """The Java client (PEM truststore and keystore, SASL/PLAIN through sasl.jaas.config)
    produces and reads back over each kind of listener."""
    topic = f"security-java-{kind.lower()}"
    create_topic(secure, topic)
    config = java_config(tmp_path / "client.properties", kind, certs)
    sent = values("java")
    output = java.run("round-trip", {"bootstrap": f"{HOST}:{secure.ports[kind]}", "topic": topic,
                                     "client.config": config},
                      input="".join(f"k{index}\t{value}\n" for index, value in enumerate(sent)))
    assert sorted(record[3] for record in output["records"]) == sorted(sent)


@versions("4.3.0")
def test_java_client_refusals(java, secure, certs, foreign_certs, tmp_path):
    """A wrong password is refused with SaslAuthenticationException and Kafka's message; a
    client without a certificate on the MTLS listener, and one that does not trust the broker's
    certificate, fail their TLS handshake."""
    wrong = java.run("cluster-id", {
        "bootstrap": f"{HOST}:{secure.ports['SASL_SSL']}",
        "client.config": java_config(tmp_path / "wrong.properties", "SASL_SSL", certs, "nope")})
    assert wrong["cluster_id"]["error"] == "SaslAuthenticationException", wrong
    assert "Invalid username or password" in wrong["cluster_id"]["message"]
    no_cert = java.run("cluster-id", {
        "bootstrap": f"{HOST}:{secure.ports['MTLS']}",
        "client.config": java_config(tmp_path / "no-cert.properties", "SSL", certs)})
    assert no_cert["cluster_id"]["error"] == "SslAuthenticationException", no_cert
    untrusting = java.run("cluster-id", {
        "bootstrap": f"{HOST}:{secure.ports['SSL']}",
        "client.config": java_config(tmp_path / "foreign.properties", "SSL", foreign_certs)})
    assert untrusting["cluster_id"]["error"] == "SslAuthenticationException", untrusting


def count_in_log(broker: Broker, text: str) -> int:
    return broker.log_text().count(text)


def test_refusals_are_logged_and_others_served(secure, certs, foreign_certs):
    """Each refusal costs only its own connection: a wrong password (SASL_AUTHENTICATION_FAILED
    with Kafka's message), no client certificate or one from an untrusted CA, plaintext to a
    TLS listener; each leaves a `Failed authentication` log line, and a good client on the same
    listener is served throughout."""
    def attempt(kind: str, config: dict[str, str]) -> tuple[str | None, list[str]]:
        return librdkafka_attempt(f"{HOST}:{secure.ports[kind]}", config)

    good, _ = attempt("SASL_SSL", librdkafka_config("SASL_SSL", certs))
    assert good
    before = count_in_log(secure, "Failed authentication with")
    refused, errors = attempt("SASL_SSL", librdkafka_config("SASL_SSL", certs, password="wrong"))
    assert refused is None
    assert any("Authentication failed: Invalid username or password" in e for e in errors), errors
    assert attempt("SASL_SSL", librdkafka_config("SASL_SSL", certs))[0] == good

    untrusted = {**librdkafka_config("MTLS", certs),
                 "ssl.certificate.location": str(foreign_certs / "client-cert.pem"),
                 "ssl.key.location": str(foreign_certs / "client-key.pem")}
    for config in (librdkafka_config("SSL", certs), untrusted):
        assert attempt("MTLS", config)[0] is None
    assert attempt("MTLS", librdkafka_config("MTLS", certs))[0] == good

    assert attempt("SSL", {})[0] is None
    assert attempt("SSL", librdkafka_config("SSL", certs))[0] == good
    deadline = time.monotonic() + 5
    while count_in_log(secure, "Failed authentication with") < before + 4:
        assert time.monotonic() < deadline, secure.log_tail()
        time.sleep(0.1)
    log = secure.log_text()
    assert "(Authentication failed: Invalid username or password)" in log
    assert "(SSL handshake failed: peer sent no certificates)" in log
    assert "(SSL handshake failed: invalid peer certificate: " in log
    assert "(SSL handshake failed: received corrupt message" in log


def test_sasl_exchange_on_the_wire(secure):
    """On a SASL listener a request other than ApiVersions before authentication closes the
    connection (Kafka's `SaslServerAuthenticator`); SaslHandshake v1 lists the enabled mechanisms
    and answers UNSUPPORTED_SASL_MECHANISM (33) for another; SaslAuthenticate with PLAIN
    authenticates, after which Metadata is served."""
    from kafka.protocol.metadata import MetadataRequest, MetadataResponse
    from kafka.protocol.sasl import (SaslAuthenticateRequest, SaslAuthenticateResponse,
                                     SaslHandshakeRequest, SaslHandshakeResponse)

    port = secure.ports["SASL_PLAINTEXT"]
    with WireConnection(HOST, port) as connection:
        connection.send_request(MetadataRequest(topics=[]), 1)
        with pytest.raises(ConnectionError):
            connection.receive_frame()

    def handshake(connection: WireConnection, mechanism: str) -> tuple[int, list[str]]:
        answer = connection.call(SaslHandshakeRequest(mechanism=mechanism),
                                 SaslHandshakeResponse, 1)
        return answer.error_code, list(answer.mechanisms)

    with WireConnection(HOST, port) as connection:
        assert handshake(connection, "GSSAPI") == (33, ENABLED)
    with WireConnection(HOST, port) as connection:
        assert handshake(connection, "PLAIN") == (0, ENABLED)
        token = b"\0alice\0" + USERS["alice"].encode()
        answer = connection.call(SaslAuthenticateRequest(auth_bytes=token),
                                 SaslAuthenticateResponse, 1)
        assert (answer.error_code, answer.session_lifetime_ms) == (0, 0)
        metadata = connection.call(MetadataRequest(topics=[]), MetadataResponse, 1)
        assert [broker.node_id for broker in metadata.brokers] == [1]
    with WireConnection(HOST, port) as connection:
        assert handshake(connection, "PLAIN") == (0, ENABLED)
        answer = connection.call(SaslAuthenticateRequest(auth_bytes=b"\0alice\0nope"),
                                 SaslAuthenticateResponse, 1)
        assert (answer.error_code, answer.error_message) == (
            SASL_AUTHENTICATION_FAILED, "Authentication failed: Invalid username or password")


def test_scram_credentials_on_the_wire(secure):
    """AlterUserScramCredentials stores a credential from the client's salt and salted
    password (iterations within Kafka's 4096-16384), DescribeUserScramCredentials lists it
    without secrets, and a deletion removes it: the same answers Kafka gives."""
    import hashlib

    from kafka.protocol.admin import (AlterUserScramCredentialsRequest,
                                      AlterUserScramCredentialsResponse,
                                      DescribeUserScramCredentialsRequest,
                                      DescribeUserScramCredentialsResponse)

    salt = b"wire-test-salt"
    salted = hashlib.pbkdf2_hmac("sha256", b"grace-secret", salt, 4096)
    with WireConnection(HOST, secure.port) as connection:
        def alter(upsertions=(), deletions=()):
            answer = connection.call(AlterUserScramCredentialsRequest(
                deletions=list(deletions), upsertions=list(upsertions)),
                AlterUserScramCredentialsResponse, 0)
            return [(r.user, r.error_code) for r in answer.results]

        def describe(users):
            answer = connection.call(DescribeUserScramCredentialsRequest(
                users=[(user,) for user in users] if users is not None else None),
                DescribeUserScramCredentialsResponse, 0)
            return {r.user: (r.error_code, [(c.mechanism, c.iterations) for c in r.credential_infos])
                    for r in answer.results}

        assert alter([("grace", 1, 4096, salt, salted)]) == [("grace", 0)]
        assert alter([("grace", 2, 100, salt, salted)]) == [("grace", UNACCEPTABLE_CREDENTIAL)]
        assert alter([("grace", 9, 4096, salt, salted)]) == [("grace", UNSUPPORTED_SASL_MECHANISM)]
        assert describe(["grace", "nobody"]) == {"grace": (0, [(1, 4096)]),
                                                 "nobody": (RESOURCE_NOT_FOUND, [])}
        assert alter(deletions=[("grace", 1)]) == [("grace", 0)]
        assert alter(deletions=[("grace", 1)]) == [("grace", RESOURCE_NOT_FOUND)]
        assert "grace" not in describe(None)


def test_plaintext_listener_unchanged(secure):
    """The PLAINTEXT listener beside them serves as before (no SASL asked)."""
    from kafka.protocol.metadata import MetadataRequest, MetadataResponse

    with WireConnection(HOST, secure.port) as connection:
        metadata = connection.call(MetadataRequest(topics=[]), MetadataResponse, 1)
        assert [broker.node_id for broker in metadata.brokers] == [1]


def test_bad_security_settings_stop_the_start(tmp_path, certs):
    """A TLS listener without its key, or with a key file that is not PEM, and a SASL listener
    without users, each stop the broker at start-up with the key named."""
    cases = [
        ({"ssl.keystore.type": "PEM"}, "ssl.keystore.location"),
        ({"ssl.keystore.type": "PEM", "ssl.keystore.location": str(certs / "ca-key.pem.missing")},
         "ca-key.pem.missing"),
        ({"listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,"
          "EXTRA:SASL_PLAINTEXT", "sasl.enabled.mechanisms": "PLAIN"},
         "listener.name.extra.plain.sasl.jaas.config"),
    ]
    for index, (overrides, named) in enumerate(cases):
        (tmp_path / f"bad-{index}").mkdir()
        broker = Broker(tmp_path / f"bad-{index}")
        extra = support.free_port()
        protocol = "SASL_PLAINTEXT" if "EXTRA:SASL_PLAINTEXT" in str(overrides) else "SSL"
        broker.overrides.update({
            "listeners": (f"PLAINTEXT://{HOST}:{broker.port},EXTRA://{HOST}:{extra},"
                          f"CONTROLLER://{HOST}:{broker.controller_port}"),
            "listener.security.protocol.map": ("PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,"
                                               f"EXTRA:{protocol}"),
            **overrides,
        })
        with pytest.raises(AssertionError, match="exited") as failure:
            broker.start()
        assert named in str(failure.value), str(failure.value)[-2000:]


SCRAM_USERS = {"SCRAM-SHA-256": ("carol", "carol-secret"), "SCRAM-SHA-512": ("dave", "dave-secret")}


def set_scram_credentials(bootstrap: str) -> None:
    from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism,
                                       UserScramCredentialUpsertion)

    admin = AdminClient({"bootstrap.servers": bootstrap})
    upsertions = [UserScramCredentialUpsertion(user, ScramCredentialInfo(
        getattr(ScramMechanism, mechanism.replace("-", "_")), 8192), password.encode())
        for mechanism, (user, password) in SCRAM_USERS.items()]
    for future in admin.alter_user_scram_credentials(upsertions).values():
        assert future.result() is None


@pytest.fixture(scope="module")
def scram_users(secure):
    set_scram_credentials(secure.bootstrap)
    return SCRAM_USERS


def scram_config(kind: str, certs: Path, mechanism: str, password: str | None = None):
    user, secret = SCRAM_USERS[mechanism]
    config = librdkafka_config(kind, certs)
    config.update({"sasl.mechanisms": mechanism, "sasl.username": user,
                   "sasl.password": password or secret})
    return config


@pytest.mark.parametrize("mechanism", sorted(SCRAM_USERS))
@pytest.mark.parametrize("client", ["kcat", "confluent-kafka", "kafka-python", "aiokafka"])
def test_scram_round_trips(secure, certs, scram_users, mechanism, client):
    """SCRAM users created through AlterUserScramCredentials (confluent-kafka's admin client)
    produce and read back over SASL_SSL with each client."""
    topic = f"scram-{mechanism.lower()}-{client}"
    create_topic(secure, topic)
    bootstrap = f"{HOST}:{secure.ports['SASL_SSL']}"
    user, password = SCRAM_USERS[mechanism]
    if client == "kcat":
        read = kcat_round_trip(bootstrap, topic, scram_config("SASL_SSL", certs, mechanism))
    elif client == "confluent-kafka":
        read = confluent_round_trip(bootstrap, topic, scram_config("SASL_SSL", certs, mechanism))
    elif client == "kafka-python":
        options = {**kafka_python_options("SASL_SSL", certs), "sasl_mechanism": mechanism,
                   "sasl_plain_username": user, "sasl_plain_password": password}
        read = kafka_python_round_trip(bootstrap, topic, options)
    else:
        options = {**aiokafka_options("SASL_SSL", certs), "sasl_mechanism": mechanism,
                   "sasl_plain_username": user, "sasl_plain_password": password}
        read = aiokafka_round_trip(bootstrap, topic, options)
    tag = {"confluent-kafka": "confluent"}.get(client, client)
    assert read == values(tag)


@versions("4.3.0")
def test_java_client_with_scram(java, secure, certs, scram_users, tmp_path):
    """The Java client authenticates with SCRAM-SHA-512 (ScramLoginModule) and round-trips;
    with a wrong password it gets SaslAuthenticationException with Kafka's message."""
    user, password = SCRAM_USERS["SCRAM-SHA-512"]

    def config(path: Path, secret: str) -> Path:
        jaas = ("org.apache.kafka.common.security.scram.ScramLoginModule required "
                f'username="{user}" password="{secret}";')
        path.write_text("\n".join([
            "security.protocol=SASL_SSL", "ssl.truststore.type=PEM",
            f"ssl.truststore.location={certs / 'ca.pem'}", "sasl.mechanism=SCRAM-SHA-512",
            f"sasl.jaas.config={jaas}"]) + "\n")
        return path

    topic = "scram-java"
    create_topic(secure, topic)
    bootstrap = f"{HOST}:{secure.ports['SASL_SSL']}"
    sent = values("java")
    output = java.run("round-trip", {"bootstrap": bootstrap, "topic": topic,
                                     "client.config": config(tmp_path / "good.properties", password)},
                      input="".join(f"k{index}\t{value}\n" for index, value in enumerate(sent)))
    assert sorted(record[3] for record in output["records"]) == sorted(sent)
    wrong = java.run("cluster-id", {"bootstrap": bootstrap,
                                    "client.config": config(tmp_path / "bad.properties", "nope")})
    assert wrong["cluster_id"]["error"] == "SaslAuthenticationException", wrong
    assert wrong["cluster_id"]["message"] == (
        "Authentication failed during authentication due to invalid credentials with SASL "
        "mechanism SCRAM-SHA-512")


def test_scram_credentials_admin(secure, scram_users):
    """DescribeUserScramCredentials lists each user's mechanisms and iterations (never secrets);
    AlterUserScramCredentials refuses too few iterations (UNACCEPTABLE_CREDENTIAL), deleting a
    credential that does not exist and describing an unknown user (RESOURCE_NOT_FOUND); a
    deleted credential no longer authenticates."""
    from confluent_kafka import KafkaException, Producer
    from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism,
                                       UserScramCredentialDeletion, UserScramCredentialUpsertion)

    admin = AdminClient({"bootstrap.servers": secure.bootstrap})
    described = admin.describe_user_scram_credentials().result()
    infos = {user: sorted((info.mechanism.name, info.iterations)
                          for info in description.scram_credential_infos)
             for user, description in described.items()}
    assert infos["carol"] == [("SCRAM_SHA_256", 8192)]
    assert infos["dave"] == [("SCRAM_SHA_512", 8192)]
    with pytest.raises(KafkaException, match="does not exist"):
        admin.describe_user_scram_credentials(["nobody"])["nobody"].result()
    weak = UserScramCredentialUpsertion(
        "erin", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 1000), b"erin-secret")
    with pytest.raises(KafkaException, match="iterations"):
        admin.alter_user_scram_credentials([weak])["erin"].result()
    missing = UserScramCredentialDeletion("erin", ScramMechanism.SCRAM_SHA_512)
    with pytest.raises(KafkaException, match="does not exist"):
        admin.alter_user_scram_credentials([missing])["erin"].result()

    frank = UserScramCredentialUpsertion(
        "frank", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"frank-secret")
    assert admin.alter_user_scram_credentials([frank])["frank"].result() is None
    config = {"bootstrap.servers": f"{HOST}:{secure.ports['SASL_PLAINTEXT']}",
              "security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "SCRAM-SHA-256",
              "sasl.username": "frank", "sasl.password": "frank-secret"}
    assert Producer(config).list_topics(timeout=10).cluster_id
    gone = UserScramCredentialDeletion("frank", ScramMechanism.SCRAM_SHA_256)
    assert admin.alter_user_scram_credentials([gone])["frank"].result() is None
    with pytest.raises(KafkaException):
        Producer(config).list_topics(timeout=3)


def test_scram_credentials_survive_a_restart(tmp_path):
    """Credentials live in the metadata log: after a restart the user still authenticates."""
    from confluent_kafka import Producer

    broker = Broker(tmp_path)
    sasl_port = support.free_port()
    broker.overrides.update({
        "listeners": (f"PLAINTEXT://{HOST}:{broker.port},SASL_PLAINTEXT://{HOST}:{sasl_port},"
                      f"CONTROLLER://{HOST}:{broker.controller_port}"),
        "advertised.listeners": (f"PLAINTEXT://{HOST}:{broker.port},"
                                 f"SASL_PLAINTEXT://{HOST}:{sasl_port}"),
        "listener.security.protocol.map": ("PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,"
                                           "CONTROLLER:PLAINTEXT"),
        "sasl.enabled.mechanisms": "SCRAM-SHA-256,SCRAM-SHA-512",
    })
    broker.start()
    try:
        set_scram_credentials(broker.bootstrap)
        broker.restart(signal.SIGKILL)
        user, password = SCRAM_USERS["SCRAM-SHA-512"]
        config = {"bootstrap.servers": f"{HOST}:{sasl_port}",
                  "security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "SCRAM-SHA-512",
                  "sasl.username": user, "sasl.password": password}
        assert Producer(config).list_topics(timeout=10).cluster_id
    finally:
        broker.kill()
