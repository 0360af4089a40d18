"""ACLs with Kafka's standard authorizer (`authorizer.class.name=
org.apache.kafka.metadata.authorizer.StandardAuthorizer`), driven by confluent-kafka's admin
client, producer and consumer over a SASL_PLAINTEXT listener with PLAIN users, and by
kafka-python's encoders on the wire.

The module's broker has `super.users=User:admin;User:ANONYMOUS`: the PLAINTEXT listener stands
for the inter-broker one, whose unauthenticated connections a real deployment also makes super
users; every client under test authenticates on the SASL listener. Each test uses topics and
principals of its own, and removes the ACLs it added.
"""

from __future__ import annotations

import contextlib
import signal
import time

import pytest

import support
from cluster import Cluster, eventually
from kafka_wire import WireConnection
from support import HOST, Broker

AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
USERS = {"admin": "admin-secret", "alice": "alice-secret", "bob": "bob-secret",
         "carol": "carol-secret"}
JAAS = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
        + " ".join(f'user_{user}="{password}"' for user, password in USERS.items()) + ";")
SECURITY_DISABLED = 54
CLUSTER_AUTHORIZATION_FAILED = 31
INVALID_REQUEST = 42
TOPIC_AUTHORIZATION_FAILED = 29


def acl_overrides(broker: Broker, sasl_port: int) -> dict[str, str]:
    return {
        "listeners": (f"PLAINTEXT://{HOST}:{broker.port},SASL_PLAINTEXT://{HOST}:{sasl_port},"
                      f"CONTROLLER://{HOST}:{broker.controller_port}"),
        "advertised.listeners": f"PLAINTEXT://{HOST}:{broker.port},SASL_PLAINTEXT://{HOST}:{sasl_port}",
        "listener.security.protocol.map":
            "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": JAAS,
        "authorizer.class.name": AUTHORIZER,
        "super.users": "User:admin;User:ANONYMOUS",
    }


@pytest.fixture(scope="module")
def acl_broker(tmp_path_factory):
    broker = Broker(tmp_path_factory.mktemp("acls"))
    broker.sasl_port = support.free_port()
    broker.overrides.update(acl_overrides(broker, broker.sasl_port))
    broker.start()
    yield broker
    broker.kill()


@pytest.fixture(autouse=True)
def _report_broker(request):
    support.report_module_broker(request, "acl_broker")


def config(broker, user: str) -> dict[str, str]:
    return {"bootstrap.servers": f"{HOST}:{broker.sasl_port}", "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanisms": "PLAIN", "sasl.username": user, "sasl.password": USERS[user]}


def admin(broker, user: str = "admin"):
    from confluent_kafka.admin import AdminClient
    return AdminClient(config(broker, user))


def binding(resource_type: str, name: str, pattern: str, principal: str, operation: str,
            permission: str = "ALLOW", host: str = "*"):
    from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType,
                                       ResourcePatternType, ResourceType)
    return AclBinding(ResourceType[resource_type], name, ResourcePatternType[pattern], principal,
                      host, AclOperation[operation], AclPermissionType[permission])


def every_acl(principal: str | None = None):
    from confluent_kafka.admin import (AclBindingFilter, AclOperation, AclPermissionType,
                                       ResourcePatternType, ResourceType)
    return AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, principal, None,
                            AclOperation.ANY, AclPermissionType.ANY)


def create_acls(broker, bindings) -> None:
    client = admin(broker)
    for future in client.create_acls(bindings, request_timeout=15).values():
        future.result()


def describe_acls(broker, principal: str | None = None, user: str = "admin") -> set[str]:
    client = admin(broker, user)
    found = client.describe_acls(every_acl(principal), request_timeout=15).result()
    return {str(acl) for acl in found}


def delete_acls(broker, principal: str) -> list:
    client = admin(broker)
    futures = client.delete_acls([every_acl(principal)], request_timeout=15)
    return [acl for future in futures.values() for acl in future.result()]


# DescribeAcls's filter fields for every binding (ANY is 1).
EVERY_ACL = dict(resource_type_filter=1, resource_name_filter=None, pattern_type_filter=1,
                 principal_filter=None, host_filter=None, operation=1, permission_type=1)


@contextlib.contextmanager
def authenticated(broker, user: str):
    """A wire connection to the SASL listener, authenticated as `user` with PLAIN."""
    from kafka.protocol.sasl import (SaslAuthenticateRequest, SaslAuthenticateResponse,
                                     SaslHandshakeRequest, SaslHandshakeResponse)
    with WireConnection(HOST, broker.sasl_port) as connection:
        handshake = connection.call(SaslHandshakeRequest(mechanism="PLAIN"),
                                    SaslHandshakeResponse, 1)
        assert handshake.error_code == 0
        token = f"\0{user}\0{USERS[user]}".encode()
        answer = connection.call(SaslAuthenticateRequest(auth_bytes=token),
                                 SaslAuthenticateResponse, 1)
        assert answer.error_code == 0
        yield connection


def error_code(failure: Exception) -> int:
    return failure.args[0].code()


def create_topics(broker, names: list[str], user: str = "admin") -> dict[str, Exception | None]:
    from confluent_kafka.admin import NewTopic
    client = admin(broker, user)
    futures = client.create_topics([NewTopic(name, 1, 1) for name in names], request_timeout=15)
    outcomes = {}
    for name, future in futures.items():
        try:
            future.result()
            outcomes[name] = None
        except Exception as failure:  # noqa: BLE001 - the outcome is what the test checks
            outcomes[name] = failure
    return outcomes


def produce(broker, user: str, topic: str, count: int = 5) -> list:
    """Produces `count` records as `user`; returns the delivery errors (None for a delivery)."""
    from confluent_kafka import Producer
    producer = Producer({**config(broker, user), "message.timeout.ms": 10000,
                         "enable.idempotence": False})
    reports = []
    for index in range(count):
        producer.produce(topic, value=f"{user}-{index}".encode(),
                         on_delivery=lambda error, message: reports.append(error))
    producer.flush(20)
    return reports


def consume(broker, user: str, topic: str, wanted: int, timeout: float = 15) -> tuple[list, list]:
    """Reads partition 0 of `topic` from the start as `user` without a group coordinator:
    (values, errors)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
    consumer = Consumer({**config(broker, user), "group.id": f"unused-{user}",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    values, errors = [], []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and len(values) < wanted and not errors:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                errors.append(message.error())
            else:
                values.append(message.value().decode())
    finally:
        consumer.close()
    return values, errors


def test_acls_are_created_described_and_deleted(acl_broker):
    """CreateAcls stores bindings, DescribeAcls finds them by filter (MATCH included), DeleteAcls
    answers with what it deleted; an invalid binding is refused with INVALID_REQUEST."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import (AclBindingFilter, AclOperation, AclPermissionType,
                                       ResourcePatternType, ResourceType)

    dave = "User:dave"
    wanted = [binding("TOPIC", "dave-", "PREFIXED", dave, "READ"),
              binding("TOPIC", "dave-orders", "LITERAL", dave, "WRITE", "DENY"),
              binding("GROUP", "dave-group", "LITERAL", dave, "READ", host="10.1.2.3")]
    create_acls(acl_broker, wanted)
    assert describe_acls(acl_broker, dave) == {str(acl) for acl in wanted}
    # MATCH: the patterns that apply to the topic dave-orders (the prefix and the literal).
    match = AclBindingFilter(ResourceType.TOPIC, "dave-orders", ResourcePatternType.MATCH, None,
                             None, AclOperation.ANY, AclPermissionType.ANY)
    client = admin(acl_broker)
    found = client.describe_acls(match, request_timeout=15).result()
    assert {str(acl) for acl in found} == {str(acl) for acl in wanted[:2]}

    with pytest.raises(KafkaException) as refused:
        create_acls(acl_broker, [binding("BROKER", "not-the-cluster", "LITERAL", dave, "ALTER")])
    assert error_code(refused.value) == INVALID_REQUEST

    deleted = delete_acls(acl_broker, dave)
    assert {str(acl) for acl in deleted} == {str(acl) for acl in wanted}
    assert describe_acls(acl_broker, dave) == set()


def test_prefix_writer_is_confined(acl_broker):
    """alice may write topics starting `alice-`: she produces there, but cannot read them, sees
    no other topic in Metadata, cannot create topics or alter configs, and a DENY on one of her
    topics wins over the prefix's ALLOW."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

    assert create_topics(acl_broker, ["alice-a", "alice-denied", "others-b"]) == {
        "alice-a": None, "alice-denied": None, "others-b": None}
    alice = "User:alice"
    # READ on the consumer's group, so that what refuses her reads is the topic's ACLs.
    create_acls(acl_broker, [binding("TOPIC", "alice-", "PREFIXED", alice, "WRITE"),
                             binding("TOPIC", "alice-denied", "LITERAL", alice, "WRITE", "DENY"),
                             binding("GROUP", "unused-alice", "LITERAL", alice, "READ")])
    try:
        assert produce(acl_broker, "alice", "alice-a") == [None] * 5

        values, errors = consume(acl_broker, "alice", "alice-a", 5)
        assert values == [] and [e.code() for e in errors] == [KafkaError.TOPIC_AUTHORIZATION_FAILED]

        visible = set(admin(acl_broker, "alice").list_topics(timeout=15).topics)
        assert visible == {"alice-a", "alice-denied"}

        outcomes = create_topics(acl_broker, ["alice-new"], user="alice")
        assert error_code(outcomes["alice-new"]) == KafkaError.TOPIC_AUTHORIZATION_FAILED

        resource = ConfigResource(ResourceType.TOPIC, "alice-a", incremental_configs=[
            ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)])
        client = admin(acl_broker, "alice")
        futures = client.incremental_alter_configs([resource])
        with pytest.raises(KafkaException) as refused:
            list(futures.values())[0].result()
        assert error_code(refused.value) == KafkaError.TOPIC_AUTHORIZATION_FAILED

        errors = produce(acl_broker, "alice", "alice-denied", count=1)
        assert [e.code() for e in errors] == [KafkaError.TOPIC_AUTHORIZATION_FAILED]
    finally:
        delete_acls(acl_broker, alice)
    # Without the ACLs (and allow.everyone.if.no.acl.found=false) nothing is left to her.
    errors = produce(acl_broker, "alice", "alice-a", count=1)
    assert [e.code() for e in errors] == [KafkaError.TOPIC_AUTHORIZATION_FAILED]


def test_super_user_and_reader(acl_broker):
    """The super user does everything without a binding; a principal with READ on a topic
    consumes it; one with nothing is refused DescribeAcls (CLUSTER_AUTHORIZATION_FAILED) and
    sees no topic."""
    from kafka.protocol.admin import DescribeAclsRequest, DescribeAclsResponse

    assert create_topics(acl_broker, ["admin-t"]) == {"admin-t": None}
    assert produce(acl_broker, "admin", "admin-t") == [None] * 5
    values, errors = consume(acl_broker, "admin", "admin-t", 5)
    assert (len(values), errors) == (5, [])

    create_acls(acl_broker, [binding("TOPIC", "admin-t", "LITERAL", "User:carol", "READ"),
                             binding("GROUP", "unused-carol", "LITERAL", "User:carol", "READ")])
    try:
        values, errors = consume(acl_broker, "carol", "admin-t", 5)
        assert (values, errors) == ([f"admin-{index}" for index in range(5)], [])
    finally:
        delete_acls(acl_broker, "User:carol")

    assert admin(acl_broker, "bob").list_topics(timeout=15).topics == {}
    # librdkafka's DescribeAcls hides the response's error; the wire shows it.
    with authenticated(acl_broker, "bob") as connection:
        answer = connection.call(DescribeAclsRequest(**EVERY_ACL), DescribeAclsResponse, 1)
    assert answer.error_code == CLUSTER_AUTHORIZATION_FAILED


def test_acls_on_the_wire(acl_broker):
    """CreateAcls, DescribeAcls and DeleteAcls v1 from kafka-python's encoders, on the
    PLAINTEXT listener (a super user here): Kafka's fields and codes."""
    from kafka.protocol.admin import (CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest,
                                      DeleteAclsResponse, DescribeAclsRequest,
                                      DescribeAclsResponse)

    # TOPIC=2, PREFIXED=4, LITERAL=3, WRITE=4, ALLOW=3; ANY=1 in filters.
    with WireConnection(HOST, acl_broker.port) as connection:
        created = connection.call(CreateAclsRequest(creations=[
            (2, "wire-", 4, "User:erin", "*", 4, 3),
            (0, "bad", 3, "User:erin", "*", 4, 3),
        ]), CreateAclsResponse, 1)
        assert [r.error_code for r in created.results] == [0, INVALID_REQUEST]
        described = connection.call(DescribeAclsRequest(
            **{**EVERY_ACL, "principal_filter": "User:erin"}), DescribeAclsResponse, 1)
        assert described.error_code == 0
        assert [(r.resource_type, r.resource_name, r.pattern_type,
                 [(a.principal, a.host, a.operation, a.permission_type) for a in r.acls])
                for r in described.resources] == [(2, "wire-", 4, [("User:erin", "*", 4, 3)])]
        deleted = connection.call(DeleteAclsRequest(filters=[
            (2, "wire-", 4, "User:erin", None, 1, 1)]), DeleteAclsResponse, 1)
        assert [(r.error_code, [(m.resource_name, m.operation) for m in r.matching_acls])
                for r in deleted.filter_results] == [(0, [("wire-", 4)])]


def test_acls_refused_without_an_authorizer(tmp_path):
    """A broker without `authorizer.class.name` answers the ACL APIs SECURITY_DISABLED, as
    Kafka does, and serves everything else to everyone."""
    from kafka.protocol.admin import DescribeAclsRequest, DescribeAclsResponse

    broker = Broker(tmp_path).start()
    try:
        with WireConnection(HOST, broker.port) as connection:
            answer = connection.call(DescribeAclsRequest(**EVERY_ACL), DescribeAclsResponse, 1)
        assert (answer.error_code, answer.error_message) == (
            SECURITY_DISABLED, "No Authorizer is configured.")
    finally:
        broker.kill()


def test_bad_authorizer_settings_stop_the_start(tmp_path):
    """An authorizer class that is not the standard one, or a super user that is not a
    principal, stops the broker at start-up with the key named."""
    for index, (key, value) in enumerate([
            ("authorizer.class.name", "kafka.security.authorizer.AclAuthorizer"),
            ("super.users", "admin")]):
        (tmp_path / f"bad-{index}").mkdir()
        broker = Broker(tmp_path / f"bad-{index}")
        broker.overrides.update({"authorizer.class.name": AUTHORIZER, key: value})
        with pytest.raises(AssertionError, match="exited") as failure:
            broker.start()
        assert key in str(failure.value), str(failure.value)[-2000:]


def test_acls_survive_a_restart(acl_broker):
    """ACLs live in the metadata log: after a restart they are all there and enforced."""
    from confluent_kafka import KafkaError

    assert create_topics(acl_broker, ["frank-t", "frank-other"]) == {
        "frank-t": None, "frank-other": None}
    frank = [binding("TOPIC", "frank-t", "LITERAL", "User:bob", "WRITE")]
    create_acls(acl_broker, frank)
    try:
        acl_broker.restart()
        assert describe_acls(acl_broker, "User:bob") == {str(acl) for acl in frank}
        assert produce(acl_broker, "bob", "frank-t", count=2) == [None, None]
        errors = produce(acl_broker, "bob", "frank-other", count=1)
        assert [e.code() for e in errors] == [KafkaError.TOPIC_AUTHORIZATION_FAILED]
    finally:
        delete_acls(acl_broker, "User:bob")


def test_acls_reach_every_broker_of_a_cluster(tmp_path):
    """In the 3+3 cluster an ACL created through one broker is answered by every broker's own
    DescribeAcls (each reads its metadata image), and survives a restart of every node."""
    from kafka.protocol.admin import (CreateAclsRequest, CreateAclsResponse, DescribeAclsRequest,
                                      DescribeAclsResponse)

    cluster = Cluster(tmp_path, properties={"authorizer.class.name": AUTHORIZER,
                                            "super.users": "User:ANONYMOUS"})
    describe = DescribeAclsRequest(**EVERY_ACL)

    def acls_at(broker_id: int) -> list:
        host, port = cluster.address(broker_id).rsplit(":", 1)
        with WireConnection(host, int(port)) as connection:
            answer = connection.call(describe, DescribeAclsResponse, 1)
        assert answer.error_code == 0
        return [(r.resource_name, [a.principal for a in r.acls]) for r in answer.resources]

    try:
        cluster.format()
        cluster.start_all()
        cluster.wait_until_ready()
        first = cluster.running_brokers()[0]
        host, port = cluster.address(first).rsplit(":", 1)
        with WireConnection(host, int(port)) as connection:
            created = connection.call(CreateAclsRequest(creations=[
                (2, "replicated-", 4, "User:grace", "*", 3, 3)]), CreateAclsResponse, 1)
        assert [r.error_code for r in created.results] == [0]
        expected = [("replicated-", ["User:grace"])]
        for broker_id in cluster.running_brokers():
            eventually(lambda: acls_at(broker_id) == expected, 15,
                       f"the ACL at broker {broker_id}")
        cluster.stop_all()
        cluster.start_all()
        cluster.wait_until_ready()
        for broker_id in cluster.running_brokers():
            eventually(lambda: acls_at(broker_id) == expected, 15,
                       f"the ACL at broker {broker_id} after the restart")
    finally:
        cluster.stop_all(signal.SIGKILL)


def test_client_certificate_principals(tmp_path):
    """On SSL listeners with client certificates, the principal is the certificate's subject in
    RFC 2253 order (`O=Flink,OU=test,CN=client` for openssl's `/CN=client/OU=test/O=Flink`), or
    what `ssl.principal.mapping.rules` makes of it (`User:client`); ACLs name those principals.
    A listener whose rules apply to no subject refuses the connection."""
    from confluent_kafka import KafkaError

    from security_support import make_certs

    (tmp_path / "certs").mkdir()
    (tmp_path / "broker").mkdir()
    certs = make_certs(tmp_path / "certs")
    broker = Broker(tmp_path / "broker")
    ports = {name: support.free_port() for name in ("RAW", "MAPPED", "STRICT")}
    listeners = ",".join(f"{name}://{HOST}:{port}" for name, port in ports.items())
    broker.overrides.update({
        "listeners": (f"PLAINTEXT://{HOST}:{broker.port},{listeners},"
                      f"CONTROLLER://{HOST}:{broker.controller_port}"),
        "advertised.listeners": f"PLAINTEXT://{HOST}:{broker.port},{listeners}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,"
                                          + ",".join(f"{name}:SSL" for name in ports),
        "inter.broker.listener.name": "PLAINTEXT",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(certs / "broker.pem"),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(certs / "ca.pem"),
        "ssl.client.auth": "required",
        "listener.name.mapped.ssl.principal.mapping.rules":
            "RULE:^O=Flink,OU=test,CN=(.*)$/$1/L, DEFAULT",
        "listener.name.strict.ssl.principal.mapping.rules": "RULE:^CN=admin,.*$/admin/",
        "authorizer.class.name": AUTHORIZER,
        "super.users": "User:ANONYMOUS",
    })
    broker.start()
    try:
        for topic in ("raw-t", "mapped-t"):
            support.create_topic(broker, topic)
        with WireConnection(HOST, broker.port) as connection:
            from kafka.protocol.admin import CreateAclsRequest, CreateAclsResponse
            created = connection.call(CreateAclsRequest(creations=[
                (2, "raw-t", 3, "User:O=Flink,OU=test,CN=client", "*", 4, 3),
                (2, "mapped-t", 3, "User:client", "*", 4, 3)]), CreateAclsResponse, 1)
            assert [r.error_code for r in created.results] == [0, 0]

        def produce_over(listener: str, topic: str) -> list:
            from confluent_kafka import Producer
            producer = Producer({
                "bootstrap.servers": f"{HOST}:{ports[listener]}", "security.protocol": "SSL",
                "ssl.ca.location": str(certs / "ca.pem"),
                "ssl.certificate.location": str(certs / "client-cert.pem"),
                "ssl.key.location": str(certs / "client-key.pem"),
                "message.timeout.ms": 8000, "enable.idempotence": False})
            reports = []
            producer.produce(topic, value=b"x", on_delivery=lambda error, _: reports.append(error))
            producer.flush(15)
            return reports

        assert produce_over("RAW", "raw-t") == [None]
        assert produce_over("MAPPED", "mapped-t") == [None]
        assert [e.code() for e in produce_over("RAW", "mapped-t")] == [
            KafkaError.TOPIC_AUTHORIZATION_FAILED]
        assert [e.code() for e in produce_over("MAPPED", "raw-t")] == [
            KafkaError.TOPIC_AUTHORIZATION_FAILED]
        assert [e.code() for e in produce_over("STRICT", "raw-t")] != [None]
        broker.wait_for_log("No rules apply to O=Flink,OU=test,CN=client")
    finally:
        broker.kill()
