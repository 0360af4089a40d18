"""The command-line tools over TLS and SASL, set up as Kafka's tools are: `security.protocol`,
PEM `ssl.*` keys and `sasl.mechanism` with `sasl.jaas.config`, from `--command-config` files,
`--producer.config`/`--consumer.config`, `--producer-property`/`--consumer-property`, the perf
tools' files and flink-e2e-latency.sh's positional properties file. Each tool runs over SASL_SSL
with SCRAM-SHA-512 and over SSL with a client certificate (the MTLS listener requires one).

`flink-configs.sh --entity-type users` creates, lists and deletes SCRAM credentials, and a user
it created authenticates with the tools and with confluent-kafka. Refusals (a wrong password, an
untrusted broker, a missing client certificate, a host name the certificate does not carry,
settings the client cannot honour) end the tool with a non-zero exit and the reason on stderr,
and the broker serves on.

The broker is security_support.py's, one for the module.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

import support
from security_support import (  # noqa: F401 (fixtures)
    _report_broker, certs, foreign_certs, listener_overrides, make_certs, secure)
from support import HOST, Broker, create_topic, describe_run, run_script

TOOLS_USER, TOOLS_PASSWORD = "tools", "tools-secret"
# SASL_SSL with SCRAM-SHA-512 as user tools; MTLS: SSL with a client certificate.
TOOL_KINDS = ["SASL_SSL", "MTLS"]
SCRAM_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"
PLAIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"
SCRAM_512_REFUSED = ("Authentication failed during authentication due to invalid credentials "
                     "with SASL mechanism SCRAM-SHA-512")
TOTAL_LINE = re.compile(r"^200 records sent, .* ms 99\.9th\.$", re.MULTILINE)
AVERAGE_LINE = re.compile(r"^Avg latency: \d+\.\d{4} ms$", re.MULTILINE)


def client_properties(kind: str, certs: Path, user: str = TOOLS_USER,
                      password: str = TOOLS_PASSWORD,
                      mechanism: str = "SCRAM-SHA-512") -> dict[str, str]:
    """Kafka's client keys for a listener of `kind` (SASL as `user` with `mechanism`)."""
    properties: dict[str, str] = {}
    if kind in ("SSL", "MTLS", "SASL_SSL"):
        properties.update({"security.protocol": "SSL", "ssl.truststore.type": "PEM",
                           "ssl.truststore.location": str(certs / "ca.pem")})
    if kind == "MTLS":
        properties.update({"ssl.keystore.type": "PEM",
                           "ssl.keystore.location": str(certs / "client.pem")})
    if kind.startswith("SASL"):
        module = PLAIN_MODULE if mechanism == "PLAIN" else SCRAM_MODULE
        properties.update({
            "security.protocol": kind, "sasl.mechanism": mechanism,
            "sasl.jaas.config": f'{module} required username="{user}" password="{password}";'})
    return properties


def write_properties(path: Path, properties: dict[str, str]) -> Path:
    """A properties file; the JAAS config over three lines, as it is often written."""
    lines = []
    for key, value in properties.items():
        if key == "sasl.jaas.config":
            value = value.replace(" username=", " \\\n    username=").replace(
                " password=", " \\\n    password=")
        lines.append(f"{key}={value}")
    path.write_text("# client security\n" + "\n".join(lines) + "\n")
    return path


def as_arguments(flag: str, properties: dict[str, str]) -> list[str]:
    """`--flag key=value` for each property."""
    return [argument for key, value in properties.items() for argument in (flag, f"{key}={value}")]


def tag(kind: str) -> str:
    """`kind` as part of a topic or group name (no '_', which Kafka warns about)."""
    return kind.lower().replace("_", "-")


def bootstrap(secure: Broker, kind: str) -> str:
    return f"{HOST}:{secure.ports[kind]}"


@pytest.fixture(scope="module")
def tools_user(secure) -> str:
    """The SCRAM-SHA-512 user the tools authenticate as, created with flink-configs.sh over
    the PLAINTEXT listener."""
    result = run_script("flink-configs.sh", "--bootstrap-server", secure.bootstrap, "--alter",
                        "--add-config", f"SCRAM-SHA-512=[password={TOOLS_PASSWORD}]",
                        "--entity-type", "users", "--entity-name", TOOLS_USER)
    assert result.stdout == f"Completed updating config for user {TOOLS_USER}.\n", (
        describe_run(result))
    return TOOLS_USER


@pytest.fixture
def config(request, secure, certs, tools_user, tmp_path) -> tuple[str, str, dict[str, str], Path]:
    """For the test's `kind`: the bootstrap address, the kind, its properties, and a file
    holding them."""
    kind = request.param
    properties = client_properties(kind, certs)
    return (bootstrap(secure, kind), kind, properties,
            write_properties(tmp_path / f"{tag(kind)}.properties", properties))


@pytest.mark.parametrize("config", TOOL_KINDS, indirect=True)
def test_topics_tool(config):
    """flink-topics.sh --command-config creates, lists and describes a topic."""
    address, kind, _, path = config
    topic = f"cli-topics-{tag(kind)}"
    tool = ("flink-topics.sh", "--bootstrap-server", address, "--command-config", str(path))
    created = run_script(*tool, "--create", "--topic", topic, "--partitions", "2")
    assert created.stdout == f"Created topic {topic}.\n", describe_run(created)
    listed = run_script(*tool, "--list")
    assert topic in listed.stdout.split(), describe_run(listed)
    described = run_script(*tool, "--describe", "--topic", topic)
    lines = described.stdout.splitlines()
    assert lines[0].startswith(f"Topic: {topic}\t") and "\tPartitionCount: 2\t" in lines[0], (
        describe_run(described))
    assert [line.split("\t")[2] for line in lines[1:]] == ["Partition: 0", "Partition: 1"], (
        describe_run(described))


@pytest.mark.parametrize("config", TOOL_KINDS, indirect=True)
def test_console_round_trip_and_group_list(config):
    """The console producer sends 20 lines and the console consumer reads them back in a group
    (settings from a file for one tool and as properties for the other), and
    flink-consumer-groups.sh --list shows the group."""
    address, kind, properties, path = config
    topic, group = f"cli-console-{tag(kind)}", f"cli-group-{tag(kind)}"
    sent = [f"{kind}-{index:02d}" for index in range(20)]
    file_or_flags = {
        "SASL_SSL": (as_arguments("--producer-property", properties),
                     ["--consumer.config", str(path)]),
        "MTLS": (["--producer.config", str(path)],
                 as_arguments("--consumer-property", properties)),
    }
    producer_settings, consumer_settings = file_or_flags[kind]
    produced = run_script("flink-console-producer.sh", "--bootstrap-server", address, "--topic",
                          topic, *producer_settings, input="\n".join(sent) + "\n")
    assert produced.stderr == "", describe_run(produced)
    consumed = run_script("flink-console-consumer.sh", "--bootstrap-server", address, "--topic",
                          topic, "--group", group, "--from-beginning", "--max-messages", "20",
                          "--timeout-ms", "20000", *consumer_settings)
    assert consumed.stdout.split() == sent, describe_run(consumed)
    groups = run_script("flink-consumer-groups.sh", "--bootstrap-server", address,
                        "--command-config", str(path), "--list")
    assert group in groups.stdout.split(), describe_run(groups)


@pytest.mark.parametrize("config", TOOL_KINDS, indirect=True)
def test_perf_tools(secure, config):
    """flink-producer-perf-test.sh sends 200 records and flink-consumer-perf-test.sh reads
    them, each taking the settings from its config file (Kafka's older flag for one kind,
    --command-config for the other); no security key is reported as unused."""
    address, kind, _, path = config
    topic = f"cli-perf-{tag(kind)}"
    create_topic(secure, topic)
    flag = {"SASL_SSL": "--command-config", "MTLS": "--producer.config"}[kind]
    produced = run_script("flink-producer-perf-test.sh", "--topic", topic, "--num-records",
                          "200", "--record-size", "100", "--throughput", "-1", "--producer-props",
                          f"bootstrap.servers={address}", flag, str(path))
    assert TOTAL_LINE.search(produced.stdout), describe_run(produced)
    assert "isn't used" not in produced.stderr, describe_run(produced)
    flag = {"SASL_SSL": "--consumer.config", "MTLS": "--command-config"}[kind]
    consumed = run_script("flink-consumer-perf-test.sh", "--bootstrap-server", address,
                          "--topic", topic, "--messages", "200", "--timeout", "20000", flag,
                          str(path))
    summary = consumed.stdout.splitlines()[1].split(", ")
    assert int(summary[4]) == 200, describe_run(consumed)
    assert "isn't used" not in consumed.stderr, describe_run(consumed)


@pytest.mark.parametrize("config", ["SASL_SSL"], indirect=True)
def test_e2e_latency_and_admin_tools(secure, config):
    """flink-e2e-latency.sh takes the properties file as its sixth argument; metadata-quorum,
    transactions, leader-election (--admin.config) and configs take --command-config."""
    address, _, _, path = config
    topic = "cli-latency"
    latency = run_script("flink-e2e-latency.sh", address, topic, "20", "1", "100", str(path))
    assert AVERAGE_LINE.search(latency.stdout), describe_run(latency)
    quorum = run_script("flink-metadata-quorum.sh", "--bootstrap-server", address,
                        "--command-config", str(path), "describe", "--status")
    assert quorum.stdout.startswith("ClusterId:"), describe_run(quorum)
    transactions = run_script("flink-transactions.sh", "--bootstrap-server", address,
                              "--command-config", str(path), "list")
    assert transactions.stdout.split("\t")[0].strip() == "TransactionalId", (
        describe_run(transactions))
    election = run_script("flink-leader-election.sh", "--bootstrap-server", address,
                          "--admin.config", str(path), "--election-type", "preferred",
                          "--topic", topic, "--partition", "0")
    assert election.stdout == f"Valid replica already elected for partitions {topic}-0\n", (
        describe_run(election))
    configs = run_script("flink-configs.sh", "--bootstrap-server", address, "--command-config",
                         str(path), "--describe", "--entity-type", "topics", "--entity-name",
                         topic)
    assert configs.stdout.startswith(f"Dynamic configs for topic {topic} are:"), (
        describe_run(configs))


def test_configs_manages_scram_users(secure, certs, tools_user, tmp_path):
    """flink-configs.sh, itself over SASL_SSL, creates a user's SCRAM-SHA-256 and -512
    credentials (salted and hashed by the tool), lists them with Kafka's line, and deletes one;
    the user then authenticates with flink-topics.sh and with confluent-kafka, and no longer
    with the deleted mechanism."""
    from confluent_kafka import KafkaException, Producer

    admin = write_properties(tmp_path / "admin.properties", client_properties("SASL_SSL", certs))
    tool = ("flink-configs.sh", "--bootstrap-server", bootstrap(secure, "SASL_SSL"),
            "--command-config", str(admin))
    user = ("--entity-type", "users", "--entity-name", "erin")
    created = run_script(*tool, "--alter", "--add-config",
                         "SCRAM-SHA-256=[iterations=8192,password=erin-secret],"
                         "SCRAM-SHA-512=[password=erin-secret]", *user)
    assert created.stdout == "Completed updating config for user erin.\n", describe_run(created)
    described = run_script(*tool, "--describe", *user)
    assert described.stdout == ("SCRAM credential configs for user-principal 'erin' are "
                                "SCRAM-SHA-256=iterations=8192, SCRAM-SHA-512=iterations=4096\n"), (
        describe_run(described))
    everyone = run_script(*tool, "--describe", "--entity-type", "users")
    assert ("SCRAM credential configs for user-principal 'tools' are "
            "SCRAM-SHA-512=iterations=4096") in everyone.stdout.splitlines(), describe_run(everyone)

    as_erin = write_properties(tmp_path / "erin.properties", client_properties(
        "SASL_PLAINTEXT", certs, "erin", "erin-secret", "SCRAM-SHA-256"))
    listed = run_script("flink-topics.sh", "--bootstrap-server", bootstrap(secure, "SASL_PLAINTEXT"),
                        "--command-config", str(as_erin), "--list")
    assert listed.returncode == 0, describe_run(listed)
    confluent = {"bootstrap.servers": bootstrap(secure, "SASL_SSL"),
                 "security.protocol": "SASL_SSL", "ssl.ca.location": str(certs / "ca.pem"),
                 "sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": "erin",
                 "sasl.password": "erin-secret"}
    assert Producer(confluent).list_topics(timeout=10).cluster_id

    deleted = run_script(*tool, "--alter", "--delete-config", "SCRAM-SHA-512", *user)
    assert deleted.stdout == "Completed updating config for user erin.\n", describe_run(deleted)
    described = run_script(*tool, "--describe", *user)
    assert described.stdout == ("SCRAM credential configs for user-principal 'erin' are "
                                "SCRAM-SHA-256=iterations=8192\n"), describe_run(described)
    with pytest.raises(KafkaException):
        Producer(confluent).list_topics(timeout=3)

    # Kafka's admin client leaves a user without credentials out of those described, and
    # "nobody" has no quotas either: nothing to print.
    missing = run_script(*tool, "--describe", "--entity-type", "users", "--entity-name", "nobody")
    assert missing.stdout == "", describe_run(missing)
    weak = run_script(*tool, "--alter", "--add-config", "SCRAM-SHA-256=[iterations=1000,password=x]",
                      *user, check=False)
    assert weak.returncode == 1 and weak.stderr == (
        "Iterations 1000 is less than the minimum 4096 required for SCRAM-SHA-256\n"), (
        describe_run(weak))
    again = run_script(*tool, "--alter", "--delete-config", "SCRAM-SHA-512", *user, check=False)
    assert again.returncode == 1, describe_run(again)
    assert ("org.apache.kafka.common.errors.ResourceNotFoundException: Attempt to delete a user "
            "credential that does not exist: erin") in again.stderr, describe_run(again)


def test_wrong_password_fails_and_the_broker_serves_on(secure, certs, tools_user, tmp_path):
    """A wrong SCRAM password (flink-topics.sh, the perf producer) and a wrong PLAIN password
    (the console producer) each end the tool with exit code 1 and Kafka's message naming the
    broker; a good client is served right after, and the broker logged the refusals."""
    address = bootstrap(secure, "SASL_SSL")
    wrong = write_properties(tmp_path / "wrong.properties",
                             client_properties("SASL_SSL", certs, password="nope"))
    listed = run_script("flink-topics.sh", "--bootstrap-server", address, "--command-config",
                        str(wrong), "--list", check=False)
    assert listed.returncode == 1, describe_run(listed)
    assert (f"Connection to {address} failed authentication due to: {SCRAM_512_REFUSED}"
            in listed.stderr), describe_run(listed)
    perf = run_script("flink-producer-perf-test.sh", "--topic", "cli-wrong", "--num-records",
                      "10", "--record-size", "10", "--throughput", "-1", "--producer-props",
                      f"bootstrap.servers={address}", "--producer.config", str(wrong),
                      check=False)
    assert perf.returncode == 1 and SCRAM_512_REFUSED in perf.stderr, describe_run(perf)
    plain = client_properties("SASL_PLAINTEXT", certs, "alice", "wrong", "PLAIN")
    produced = run_script("flink-console-producer.sh", "--bootstrap-server",
                          bootstrap(secure, "SASL_PLAINTEXT"), "--topic", "cli-wrong",
                          *as_arguments("--producer-property", plain), input="x\n", check=False)
    assert produced.returncode == 1, describe_run(produced)
    assert "Authentication failed: Invalid username or password" in produced.stderr, (
        describe_run(produced))

    good = write_properties(tmp_path / "good.properties", client_properties("SASL_SSL", certs))
    served = run_script("flink-topics.sh", "--bootstrap-server", address, "--command-config",
                        str(good), "--list")
    assert served.returncode == 0 and served.stderr == "", describe_run(served)
    log = secure.log_text()
    assert f"({SCRAM_512_REFUSED})" in log and "(Authentication failed: Invalid username" in log


def test_tls_refusals_and_unsupported_settings(secure, certs, foreign_certs, tmp_path):
    """No client certificate on the MTLS listener, a broker certificate from an untrusted CA,
    plaintext to a TLS listener, an unknown protocol, GSSAPI and a key password for a key
    that is not encrypted each end flink-topics.sh with exit code 1 and the reason on stderr."""
    def topics_list(kind: str, properties: dict[str, str]):
        path = write_properties(tmp_path / "case.properties", properties)
        return run_script("flink-topics.sh", "--bootstrap-server", bootstrap(secure, kind),
                          "--command-config", str(path), "--list", check=False)

    cases = [
        ("MTLS", client_properties("SSL", certs),
         f"SSL handshake with {bootstrap(secure, 'MTLS')} failed: received fatal alert: "
         "CertificateRequired"),
        ("SSL", client_properties("SSL", foreign_certs), "failed: invalid peer certificate: "),
        ("SSL", {}, f"{bootstrap(secure, 'SSL')} answered with TLS: it is an SSL or SASL_SSL "
         "listener, so set security.protocol"),
        ("SSL", {"security.protocol": "KERBEROS"},
         "Invalid value KERBEROS for configuration security.protocol: String must be one of: "
         "PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"),
        ("SASL_SSL", {**client_properties("SASL_SSL", certs), "sasl.mechanism": "GSSAPI"},
         "Invalid value GSSAPI for configuration sasl.mechanism"),
        ("MTLS", {**client_properties("MTLS", certs), "ssl.key.password": "secret"},
         "ssl.key.password is set but there is no ENCRYPTED PRIVATE KEY block"),
    ]
    for kind, properties, expected in cases:
        result = topics_list(kind, properties)
        assert result.returncode == 1 and expected in result.stderr, describe_run(result)
    assert topics_list("MTLS", client_properties("MTLS", certs)).returncode == 0


def encrypt_key(certs: Path, name: str, password: str, directory: Path) -> Path:
    """`name`'s key encrypted with `password` as `openssl pkcs8 -topk8` writes it (PBES2,
    AES-256-CBC), followed by its certificate: a keystore file with an encrypted key."""
    encrypted = directory / f"{name}-encrypted-key.pem"
    subprocess.run(["openssl", "pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in",
                    str(certs / f"{name}-key.pem"), "-out", str(encrypted), "-passout",
                    f"pass:{password}"], check=True, capture_output=True)
    keystore = directory / f"{name}-encrypted.pem"
    keystore.write_text(encrypted.read_text() + (certs / f"{name}-cert.pem").read_text())
    return keystore


def test_encrypted_keys_open_with_the_key_password(tmp_path, certs):
    """A listener and a tool whose keys are encrypted PKCS#8 (`ssl.key.password`): the broker
    serves TLS with its key opened, the tool presents its client certificate on a listener that
    requires one, and a wrong password ends the tool with the reason."""
    broker = Broker(tmp_path / "broker")
    broker.work_dir.mkdir()
    broker.overrides.update(listener_overrides(broker, {"MTLS": "SSL"}))
    broker.overrides.update({
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(encrypt_key(certs, "broker", "broker-pass", tmp_path)),
        "ssl.key.password": "broker-pass",
        "ssl.client.auth": "required",
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(certs / "ca.pem"),
    })
    broker.start()
    try:
        client = {**client_properties("MTLS", certs),
                  "ssl.keystore.location": str(encrypt_key(certs, "client", "client-pass",
                                                           tmp_path)),
                  "ssl.key.password": "client-pass"}
        address = f"{HOST}:{broker.ports['MTLS']}"

        def topics_list(properties):
            path = write_properties(tmp_path / "client.properties", properties)
            return run_script("flink-topics.sh", "--bootstrap-server", address,
                              "--command-config", str(path), "--list", check=False)

        served = topics_list(client)
        assert served.returncode == 0, describe_run(served)
        refused = topics_list({**client, "ssl.key.password": "wrong"})
        assert refused.returncode == 1 and "does not open with ssl.key.password" in \
            refused.stderr, describe_run(refused)
    finally:
        broker.kill()


def test_host_names_are_checked_unless_the_algorithm_is_empty(tmp_path):
    """A broker whose certificate names another host is refused by default
    (ssl.endpoint.identification.algorithm=https) and accepted with the algorithm empty, which
    still refuses a certificate from an untrusted CA."""
    elsewhere = make_certs(tmp_path / "elsewhere", hosts="broker.elsewhere.test")
    foreign = make_certs(tmp_path / "foreign", hosts="broker.elsewhere.test")
    broker = Broker(tmp_path / "broker")
    broker.work_dir.mkdir()
    ssl_port = support.free_port()
    broker.overrides.update({
        "listeners": (f"PLAINTEXT://{HOST}:{broker.port},SSL://{HOST}:{ssl_port},"
                      f"CONTROLLER://{HOST}:{broker.controller_port}"),
        "advertised.listeners": f"PLAINTEXT://{HOST}:{broker.port},SSL://{HOST}:{ssl_port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SSL:SSL,CONTROLLER:PLAINTEXT",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(elsewhere / "broker.pem"),
    })
    broker.start()
    try:
        def topics_list(ca: Path, extra: dict[str, str]):
            properties = {**client_properties("SSL", ca), **extra}
            path = write_properties(tmp_path / "client.properties", properties)
            return run_script("flink-topics.sh", "--bootstrap-server", f"{HOST}:{ssl_port}",
                              "--command-config", str(path), "--list", check=False)

        checked = topics_list(elsewhere, {})
        assert checked.returncode == 1, describe_run(checked)
        assert (f'invalid peer certificate: certificate not valid for name "{HOST}"'
                in checked.stderr), describe_run(checked)
        unchecked = topics_list(elsewhere, {"ssl.endpoint.identification.algorithm": ""})
        assert unchecked.returncode == 0, describe_run(unchecked)
        untrusted = topics_list(foreign, {"ssl.endpoint.identification.algorithm": ""})
        assert untrusted.returncode == 1 and "invalid peer certificate: " in untrusted.stderr, (
            describe_run(untrusted))
    finally:
        broker.kill()
