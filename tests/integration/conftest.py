"""Fixtures: a real `flink server` from the dist on loopback, killed at teardown.

`broker` is a fresh single-node broker per test. `start_broker({key: value})` starts one with extra
`--override`s (for example `shard.count=2`). Both kill the process at teardown; a failing test's
report carries the tail of every broker log it started.

`java` is tests/java/JavaClient.java compiled against one kafka-clients version (java_clients.py),
once per version and session, for the modules that drive the official Java client.
"""

from __future__ import annotations

import pytest

import java_clients
import support


def pytest_configure(config):
    missing = [p for p in (support.FLINK, support.SERVER_PROPERTIES) if not p.exists()]
    if missing:
        raise pytest.UsageError(
            f"missing {', '.join(map(str, missing))}: run `make dist` first (or set FLINK_DIST)"
        )


@pytest.fixture(autouse=True)
def _forget_brokers():
    support.started_brokers.clear()
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for number, broker in enumerate(support.started_brokers):
            report.sections.append(
                (f"flink server log #{number} ({broker.log_path})", broker.log_tail())
            )


@pytest.fixture
def start_broker(tmp_path):
    brokers = []

    def start(overrides: dict[str, object] | None = None) -> support.Broker:
        work_dir = tmp_path / f"broker{len(brokers)}"
        work_dir.mkdir()
        broker = support.Broker(work_dir, {k: str(v) for k, v in (overrides or {}).items()})
        brokers.append(broker)
        return broker.start()

    yield start
    for broker in brokers:
        broker.kill()


@pytest.fixture
def broker(start_broker) -> support.Broker:
    return start_broker()


@pytest.fixture(scope="session")
def _java_builds() -> dict[str, java_clients.JavaClient | str]:
    """Compiled programs (or why compiling failed) by client version."""
    return {}


@pytest.fixture
def java(request, _java_builds, tmp_path_factory) -> java_clients.JavaClient:
    """JavaClient.java compiled against kafka-clients `request.param` (indirect parametrize,
    see `java_clients.versions`)."""
    version = request.param
    if version not in _java_builds:
        _java_builds[version] = java_clients.compile_client(
            version, tmp_path_factory.mktemp(f"java-{version}"))
    build = _java_builds[version]
    assert isinstance(build, java_clients.JavaClient), build
    return build
