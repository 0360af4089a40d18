"""SASL/OAUTHBEARER and KIP-368 re-authentication with real clients.

One broker serves the module with three OAUTHBEARER listeners beside PLAINTEXT:
- UNSECURED: Kafka's default unsecured validator, scope `kafka` required
  (`unsecuredValidatorRequiredScope`);
- JWKS: Kafka's `OAuthBearerValidatorCallbackHandler` with a JWK set file made here (an RSA key
  from openssl), the expected audience `flink` and issuer `https://issuer.test`;
- REAUTH: the unsecured validator with `connections.max.reauth.ms=2000`.

confluent-kafka (librdkafka) produces and consumes with its unsecured JWTs and, through
`oauth_cb`, with RS256 tokens this module signs with openssl; the Java client (kafka-clients
4.3) with its unsecured login module. Refused tokens (expired, wrong signature, wrong audience,
missing scope) get the client's usual error and a broker log line while another client keeps
working. A librdkafka producer keeps producing across re-authentications; a wire client that
does not re-authenticate is closed after its session's lifetime.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import time
from pathlib import Path

import pytest

import support
from java_clients import versions
from kafka_wire import WireConnection
from security_support import librdkafka_attempt, listener_overrides
from support import HOST, Broker, create_topic, require_tool
from test_security import confluent_round_trip, values

LOGIN = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"
JWKS_HANDLER = "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler"
AUDIENCE = "flink"
ISSUER = "https://issuer.test"
KEY_ID = "test-key"
REAUTH_MS = 2000
LISTENERS = ["UNSECURED", "JWKS", "REAUTH"]
SASL_AUTHENTICATION_FAILED = 58
ILLEGAL_SASL_STATE = 34
GENERIC_REFUSAL = ("Authentication failed during authentication due to invalid credentials "
                   "with SASL mechanism OAUTHBEARER")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsecured_token(claims: dict) -> str:
    """An unsigned JWT (`alg` none), as librdkafka and the Java client make them."""
    header = b64url(json.dumps({"alg": "none"}).encode())
    return f"{header}.{b64url(json.dumps(claims).encode())}."


class RsaKey:
    """An RSA key made with openssl, its JWK, and RS256 tokens signed with it."""

    def __init__(self, directory: Path, key_id: str):
        openssl = require_tool("openssl")
        self.path = directory / f"{key_id}.pem"
        self.key_id = key_id
        subprocess.run([openssl, "genpkey", "-algorithm", "RSA", "-pkeyopt",
                        "rsa_keygen_bits:2048", "-out", str(self.path)],
                       check=True, capture_output=True)
        modulus = subprocess.run([openssl, "rsa", "-in", str(self.path), "-noout", "-modulus"],
                                 check=True, capture_output=True, text=True).stdout
        self.modulus = bytes.fromhex(modulus.strip().split("=", 1)[1])

    def jwk(self) -> dict:
        return {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.key_id,
                "n": b64url(self.modulus), "e": b64url((65537).to_bytes(3, "big"))}

    def sign(self, claims: dict, key_id: str | None = None) -> str:
        header = {"alg": "RS256", "typ": "JWT", "kid": key_id or self.key_id}
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.path)],
                                   input=signing_input.encode(), check=True,
                                   capture_output=True).stdout
        return f"{signing_input}.{b64url(signature)}"


def signed_claims(lifetime_s: int = 300, **changes) -> dict:
    now = int(time.time())
    claims = {"sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + lifetime_s,
              "scope": "kafka"}
    claims.update(changes)
    return claims


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    directory = tmp_path_factory.mktemp("oauth-keys")
    trusted, stranger = RsaKey(directory, KEY_ID), RsaKey(directory, "stranger")
    jwks = directory / "jwks.json"
    jwks.write_text(json.dumps({"keys": [trusted.jwk()]}))
    return {"trusted": trusted, "stranger": stranger, "jwks": jwks}


@pytest.fixture(scope="module")
def oauth(tmp_path_factory, keys):
    """The module's broker: PLAINTEXT plus the UNSECURED, JWKS and REAUTH listeners."""
    broker = Broker(tmp_path_factory.mktemp("oauthbearer"))
    broker.overrides.update(listener_overrides(
        broker, {name: "SASL_PLAINTEXT" for name in LISTENERS}))
    broker.overrides.update({
        "sasl.enabled.mechanisms": "OAUTHBEARER",
        "listener.name.unsecured.oauthbearer.sasl.jaas.config":
            f'{LOGIN} required unsecuredValidatorRequiredScope="kafka";',
        "listener.name.jwks.oauthbearer.sasl.jaas.config": f"{LOGIN} required;",
        "listener.name.jwks.oauthbearer.sasl.server.callback.handler.class": JWKS_HANDLER,
        "listener.name.jwks.oauthbearer.sasl.oauthbearer.jwks.endpoint.url":
            f"file://{keys['jwks']}",
        "sasl.oauthbearer.expected.audience": AUDIENCE,
        "sasl.oauthbearer.expected.issuer": ISSUER,
        "listener.name.reauth.oauthbearer.sasl.jaas.config": f"{LOGIN} required;",
        "listener.name.reauth.oauthbearer.connections.max.reauth.ms": str(REAUTH_MS),
    })
    broker.start()
    yield broker
    broker.kill()


@pytest.fixture(autouse=True)
def _report_broker(request):
    support.report_module_broker(request, "oauth")


def bootstrap(broker: Broker, listener: str) -> str:
    return f"{HOST}:{broker.ports[listener]}"


def unsecured_config(principal: str = "alice", scope: str = "kafka") -> dict:
    """librdkafka's own unsecured JWTs."""
    return {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "OAUTHBEARER",
            "enable.sasl.oauthbearer.unsecure.jwt": "true",
            "sasl.oauthbearer.config": f"principal={principal} scope={scope}"}


def token_config(token: str) -> dict:
    """librdkafka with a token made here (confluent-kafka's oauth_cb)."""
    return {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "OAUTHBEARER",
            "oauth_cb": lambda _config: (token, time.time() + 300, "alice")}


def round_trip(address: str, topic: str, config: dict) -> None:
    assert confluent_round_trip(address, topic, config) == values("confluent")


def test_unsecured_tokens_round_trip(oauth):
    """librdkafka's unsecured JWTs (principal alice, scope kafka) produce and consume."""
    create_topic(oauth, "oauth-unsecured")
    round_trip(bootstrap(oauth, "UNSECURED"), "oauth-unsecured", unsecured_config())


def test_signed_tokens_round_trip(oauth, keys):
    """An RS256 token signed with the JWK set's key, for the expected audience and issuer,
    produces and consumes through confluent-kafka's oauth_cb."""
    create_topic(oauth, "oauth-jwks")
    token = keys["trusted"].sign(signed_claims())
    round_trip(bootstrap(oauth, "JWKS"), "oauth-jwks", token_config(token))


@versions("4.3.0")
def test_java_client_unsecured(java, oauth, tmp_path):
    """The Java client's unsecured login module (scope as a list claim) round-trips."""
    topic = "oauth-java"
    create_topic(oauth, topic)
    config = tmp_path / "client.properties"
    config.write_text("\n".join([
        "security.protocol=SASL_PLAINTEXT", "sasl.mechanism=OAUTHBEARER",
        f'sasl.jaas.config={LOGIN} required unsecuredLoginStringClaim_sub="alice" '
        'unsecuredLoginListClaim_scope=",kafka";']) + "\n")
    sent = values("java")
    output = java.run("round-trip", {"bootstrap": bootstrap(oauth, "UNSECURED"), "topic": topic,
                                     "client.config": config},
                      input="".join(f"k{index}\t{value}\n" for index, value in enumerate(sent)))
    assert sorted(record[3] for record in output["records"]) == sorted(sent)


def test_refused_tokens_are_logged_and_others_served(oauth, keys):
    """An expired token, one signed by another key, one for another audience and one without
    the required scope are each refused with the client's usual error (the broker's challenge)
    and a broker log line; a good client on the same listener is served between them."""
    jwks, unsecured = bootstrap(oauth, "JWKS"), bootstrap(oauth, "UNSECURED")
    good_signed = token_config(keys["trusted"].sign(signed_claims()))
    cluster, _ = librdkafka_attempt(jwks, good_signed)
    assert cluster
    refusals = [
        (jwks, token_config(keys["trusted"].sign(signed_claims(lifetime_s=-60))),
         '{"status":"invalid_token"}', "Expiration Time"),
        (jwks, token_config(keys["stranger"].sign(signed_claims(), key_id=KEY_ID)),
         '{"status":"invalid_token"}', "JWS signature is invalid"),
        (jwks, token_config(keys["trusted"].sign(signed_claims(aud="elsewhere"))),
         '{"status":"invalid_token"}', "Audience (aud) claim"),
        (unsecured, unsecured_config(scope="other"),
         '{"status":"insufficient_scope", "scope":"[kafka]"}', "missing a required scope (kafka)"),
    ]
    for address, config, challenge, reason in refusals:
        before = oauth.log_text().count(reason)
        refused, errors = librdkafka_attempt(address, config)
        assert refused is None, reason
        assert any("authentication" in e.lower() and challenge in e for e in errors), (
            reason, errors)
        assert oauth.wait_for_log(f"OAUTHBEARER token from .* refused: .*{re.escape(reason)}")
        assert oauth.log_text().count(reason) > before
        assert f"Failed authentication with {HOST}" in oauth.log_text()
        good = good_signed if address == jwks else unsecured_config()
        assert librdkafka_attempt(address, good)[0] == cluster


def test_reauthentication_keeps_a_producer_going(oauth):
    """With connections.max.reauth.ms=2000 librdkafka re-authenticates (KIP-368) every
    session lifetime and keeps producing for six seconds, every record acknowledged."""
    from confluent_kafka import Producer

    topic = "oauth-reauth"
    create_topic(oauth, topic)
    before = oauth.log_text().count("re-authenticated as User:alice")
    failures: list[str] = []

    def delivered(error, _message):
        if error is not None:
            failures.append(str(error))

    producer = Producer({"bootstrap.servers": bootstrap(oauth, "REAUTH"), **unsecured_config(),
                         "error_cb": lambda error: failures.append(str(error))})
    sent = 0
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        producer.produce(topic, f"record-{sent}".encode(), on_delivery=delivered)
        sent += 1
        producer.poll(0.1)
    assert producer.flush(30) == 0
    assert failures == []
    reauthentications = oauth.log_text().count("re-authenticated as User:alice") - before
    assert reauthentications >= 2, oauth.log_tail()


def sasl(connection: WireConnection, message: bytes, version: int = 1):
    from kafka.protocol.sasl import SaslAuthenticateRequest, SaslAuthenticateResponse

    return connection.call(SaslAuthenticateRequest(auth_bytes=message),
                           SaslAuthenticateResponse, version)


def handshake(connection: WireConnection, mechanism: str = "OAUTHBEARER") -> int:
    from kafka.protocol.sasl import SaslHandshakeRequest, SaslHandshakeResponse

    return connection.call(SaslHandshakeRequest(mechanism=mechanism),
                           SaslHandshakeResponse, 1).error_code


def initial_response(token: str, authorization_id: str = "") -> bytes:
    authorization = f"a={authorization_id}" if authorization_id else ""
    return f"n,{authorization},\x01auth=Bearer {token}\x01\x01".encode()


def alice_token(lifetime_s: int = 60, sub: str = "alice", **claims) -> str:
    now = int(time.time())
    return unsecured_token({"sub": sub, "iat": now, "exp": now + lifetime_s, "scope": ["kafka"],
                            **claims})


def metadata(connection: WireConnection):
    from kafka.protocol.metadata import MetadataRequest, MetadataResponse

    return connection.call(MetadataRequest(topics=[]), MetadataResponse, 1)


def test_exchange_on_the_wire(oauth):
    """SaslAuthenticate v1 answers a good token with the session lifetime (the token's
    remaining lifetime: no connections.max.reauth.ms here); a refused one with the challenge,
    then, after the client's ^A, SASL_AUTHENTICATION_FAILED with the challenge as the message;
    a malformed message with Kafka's generic refusal; each refusal closes the connection."""
    port = oauth.ports["UNSECURED"]
    with WireConnection(HOST, port) as connection:
        assert handshake(connection) == 0
        answer = sasl(connection, initial_response(alice_token(30), "alice"))
        assert answer.error_code == 0, answer
        assert 25_000 < answer.session_lifetime_ms <= 30_000
        assert [broker.node_id for broker in metadata(connection).brokers] == [1]
    with WireConnection(HOST, port) as connection:
        assert handshake(connection) == 0
        answer = sasl(connection, initial_response(alice_token(scope=["other"])))
        challenge = b'{"status":"insufficient_scope", "scope":"[kafka]"}'
        assert (answer.error_code, bytes(answer.auth_bytes)) == (0, challenge)
        answer = sasl(connection, b"\x01")
        assert (answer.error_code, answer.error_message) == (
            SASL_AUTHENTICATION_FAILED, challenge.decode())
        with pytest.raises(ConnectionError):
            metadata(connection)
    for message in (b"n,,auth=Bearer x\x01\x01", initial_response("a b")):
        with WireConnection(HOST, port) as connection:
            assert handshake(connection) == 0
            answer = sasl(connection, message)
            assert (answer.error_code, answer.error_message) == (
                SASL_AUTHENTICATION_FAILED, GENERIC_REFUSAL)
    with WireConnection(HOST, port) as connection:
        assert handshake(connection) == 0
        answer = sasl(connection, initial_response(alice_token(), "bob"))
        assert answer.error_code == SASL_AUTHENTICATION_FAILED
        assert "authorization id (bob) that is different" in answer.error_message


def test_hostile_tokens_are_answered(oauth):
    """Tokens meant to break the broker are answered, never fatal: expiries at the ends of the
    number range (one far beyond what a clock holds is a session that never ends), claims of the
    wrong type, JSON nested past any sane depth, an oversized initial response; the broker
    serves the next client."""
    port = oauth.ports["UNSECURED"]
    header = b64url(json.dumps({"alg": "none"}).encode())

    def raw_token(claims: str) -> str:
        return f"{header}.{b64url(claims.encode())}."

    far = raw_token('{"sub":"alice","exp":1e300,"scope":"kafka"}')
    with WireConnection(HOST, port) as connection:
        assert handshake(connection) == 0
        answer = sasl(connection, initial_response(far))
        assert answer.error_code == 0 and answer.session_lifetime_ms >= 2**62, answer
        metadata(connection)
    refused = [raw_token('{"sub":"alice","exp":-1e300,"scope":"kafka"}'),
               raw_token('{"sub":["alice"],"exp":"soon","scope":7}'),
               raw_token('{"sub":"alice","exp":1e999}'),
               raw_token('{"a":' * 5000 + "1" + "}" * 5000),
               f"{header}.{'A' * 300_000}."]
    for token in refused:
        with WireConnection(HOST, port) as connection:
            assert handshake(connection) == 0
            answer = sasl(connection, initial_response(token))
            assert (answer.error_code, bytes(answer.auth_bytes)) == (
                0, b'{"status":"invalid_token"}'), token[:80]
    with WireConnection(HOST, port) as connection:
        assert handshake(connection) == 0
        answer = sasl(connection, initial_response("a" * 600_000))
        assert (answer.error_code, answer.error_message) == (
            SASL_AUTHENTICATION_FAILED, GENERIC_REFUSAL)
    with WireConnection(HOST, port) as connection:
        assert handshake(connection) == 0
        assert sasl(connection, initial_response(alice_token())).error_code == 0
        metadata(connection)


def test_session_ends_without_reauthentication(oauth):
    """On the REAUTH listener the session lasts connections.max.reauth.ms (or less when the
    token expires sooner); a client that does not re-authenticate is closed at its next
    request after that, with Kafka's log line."""
    port = oauth.ports["REAUTH"]
    with WireConnection(HOST, port) as connection:
        assert handshake(connection) == 0
        answer = sasl(connection, initial_response(alice_token(1)))
        assert answer.error_code == 0 and 0 <= answer.session_lifetime_ms <= 1000
    with WireConnection(HOST, port) as connection:
        assert handshake(connection) == 0
        answer = sasl(connection, initial_response(alice_token()))
        assert (answer.error_code, answer.session_lifetime_ms) == (0, REAUTH_MS)
        metadata(connection)
        time.sleep(REAUTH_MS / 1000 + 0.5)
        with pytest.raises(ConnectionError):
            metadata(connection)
    assert oauth.wait_for_log("Disconnecting expired channel: the session of User:alice")


def test_reauthentication_on_the_wire(oauth):
    """A client that authenticated with SaslAuthenticate v1 re-authenticates on its
    connection (SaslHandshake and SaslAuthenticate again, the same principal) and is served
    past the first session's end; a v0 client's second handshake is ILLEGAL_SASL_STATE; a
    re-authentication as another principal is refused with Kafka's message and closes the
    connection."""
    port = oauth.ports["REAUTH"]
    with WireConnection(HOST, port) as connection:
        assert handshake(connection) == 0
        assert sasl(connection, initial_response(alice_token())).error_code == 0
        for _ in range(2):
            time.sleep(1.2)
            assert handshake(connection) == 0
            answer = sasl(connection, initial_response(alice_token()))
            assert (answer.error_code, answer.session_lifetime_ms) == (0, REAUTH_MS)
            metadata(connection)
        time.sleep(1.2)
        assert handshake(connection) == 0
        answer = sasl(connection, initial_response(alice_token(sub="bob")))
        assert (answer.error_code, answer.error_message) == (
            SASL_AUTHENTICATION_FAILED,
            "Cannot change principals during re-authentication from User.alice: User.bob")
        with pytest.raises(ConnectionError):
            metadata(connection)
    with WireConnection(HOST, port) as connection:
        assert handshake(connection) == 0
        assert sasl(connection, initial_response(alice_token()), version=0).error_code == 0
        time.sleep(1.2)
        assert handshake(connection) == ILLEGAL_SASL_STATE
        metadata(connection)
