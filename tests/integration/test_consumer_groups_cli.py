"""flink-consumer-groups.sh and flink-console-consumer.sh --group against a real broker: group
members split a topic's partitions, --describe shows members and lag, --reset-offsets rewinds an
inactive group, and --delete removes it, with the output of Kafka's kafka-consumer-groups.sh."""

from __future__ import annotations

import re
import signal
import subprocess
import time

from support import BIN_DIR, create_topic, describe_run, run_script

GROUP_OVERRIDES = {"group.initial.rebalance.delay.ms": 0}
MEMBER_WAIT_S = 30
MESSAGES = 40


def groups_tool(broker, *args, check=True):
    return run_script("flink-consumer-groups.sh", "--bootstrap-server", broker.bootstrap, *args,
                      check=check)


def start_group_consumer(broker, topic, group, *args):
    """A console consumer in `group` printing partition and value, running until stopped."""
    command = [str(BIN_DIR / "flink-console-consumer.sh"), "--bootstrap-server", broker.bootstrap,
               "--topic", topic, "--group", group, "--property", "print.partition=true",
               "--consumer-property", "heartbeat.interval.ms=500", *args]
    return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def stop(process, timeout=20):
    """Ctrl+C (so the consumer commits and leaves), then its output."""
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=timeout)
    return stdout, stderr


def describe_rows(broker, group, *extra):
    """The data rows of a --describe table (header dropped), split on blanks."""
    result = groups_tool(broker, "--describe", "--group", group, *extra)
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines and lines[0].startswith("GROUP"), describe_run(result)
    return [line.split() for line in lines[1:]], result


def wait_for_members(broker, group, count):
    deadline = time.monotonic() + MEMBER_WAIT_S
    while True:
        result = groups_tool(broker, "--describe", "--group", group, "--state", check=False)
        match = re.search(r"\s(Stable)\s+(\d+)\s*$", result.stdout)
        if match and int(match.group(2)) == count:
            return
        assert time.monotonic() < deadline, f"group never stable with {count} members:\n" + \
            describe_run(result)
        time.sleep(0.3)


def produce(broker, topic, count, prefix="m"):
    lines = "".join(f"k{index}:{prefix}{index}\n" for index in range(count))
    run_script("flink-console-producer.sh", "--bootstrap-server", broker.bootstrap, "--topic",
               topic, "--property", "parse.key=true", "--property", "key.separator=:",
               input=lines)
    return {f"{prefix}{index}" for index in range(count)}


def consumed_values(stdout):
    return [line.split("\t", 1)[1] for line in stdout.splitlines() if "\t" in line]


def test_two_group_members_split_the_topic_and_describe_shows_them(start_broker):
    """Two console consumers in one group share a 2-partition topic: every message is read
    once, --describe lists both members with lag 0, and --members/--state agree."""
    broker = start_broker(GROUP_OVERRIDES)
    create_topic(broker, "shared", partitions=2)
    first = start_group_consumer(broker, "shared", "pair", "--from-beginning")
    second = start_group_consumer(broker, "shared", "pair", "--from-beginning")
    try:
        wait_for_members(broker, "pair", 2)
        sent = produce(broker, "shared", MESSAGES)
        deadline = time.monotonic() + MEMBER_WAIT_S
        while True:
            rows, result = describe_rows(broker, "pair")
            lags = [row[5] for row in rows]
            if len(rows) == 2 and lags == ["0", "0"] and \
                    sum(int(row[3]) for row in rows) == MESSAGES:
                break
            assert time.monotonic() < deadline, describe_run(result)
            time.sleep(0.5)
        assert sorted(row[2] for row in rows) == ["0", "1"], describe_run(result)
        assert len({row[6] for row in rows}) == 2, "each partition has its own member"
        assert result.stdout.startswith("\nGROUP           TOPIC           PARTITION  "
                                        "CURRENT-OFFSET  LOG-END-OFFSET  LAG             "
                                        "CONSUMER-ID"), describe_run(result)

        members, result = describe_rows(broker, "pair", "--members")
        assert len(members) == 2 and all(row[-1] == "1" for row in members), \
            describe_run(result)
        state, result = describe_rows(broker, "pair", "--state")
        assert "range" in state[0] and "Stable" in state[0] and state[0][-1] == "2", \
            describe_run(result)

        listed = groups_tool(broker, "--list").stdout.split()
        assert "pair" in listed
        refused = groups_tool(broker, "--delete", "--group", "pair", check=False)
        assert refused.returncode == 1 and "NON_EMPTY_GROUP" in refused.stderr, \
            describe_run(refused)
    finally:
        outputs = [stop(first), stop(second)]
    values = [value for stdout, _ in outputs for value in consumed_values(stdout)]
    assert sorted(values) == sorted(sent), "every message consumed exactly once"
    assert all(consumed_values(stdout) for stdout, _ in outputs), "both members consumed"


def test_reset_to_earliest_rereads_and_delete_removes_the_group(start_broker):
    """After the members leave, --reset-offsets --to-earliest --execute makes a new member
    re-read everything; a dry run changes nothing; --delete removes the empty group."""
    broker = start_broker(GROUP_OVERRIDES)
    create_topic(broker, "replay", partitions=2)
    sent = produce(broker, "replay", MESSAGES)
    first = run_script("flink-console-consumer.sh", "--bootstrap-server", broker.bootstrap,
                       "--topic", "replay", "--group", "again", "--from-beginning",
                       "--max-messages", str(MESSAGES))
    assert len(first.stdout.splitlines()) == MESSAGES, describe_run(first)

    rows, result = describe_rows(broker, "again")
    assert "has no active members" in result.stderr, describe_run(result)
    assert sum(int(row[3]) for row in rows) == MESSAGES and all(row[5] == "0" for row in rows)
    assert all(row[6] == "-" for row in rows), describe_run(result)

    dry = groups_tool(broker, "--reset-offsets", "--group", "again", "--topic", "replay",
                      "--to-earliest")
    assert "--execute option is missing" in dry.stderr, describe_run(dry)
    plan = [line.split() for line in dry.stdout.splitlines() if line.strip()]
    assert plan[0] == ["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"], describe_run(dry)
    assert sorted(plan[1:]) == [["again", "replay", "0", "0"], ["again", "replay", "1", "0"]]
    rows, _ = describe_rows(broker, "again")
    assert sum(int(row[3]) for row in rows) == MESSAGES, "a dry run commits nothing"

    groups_tool(broker, "--reset-offsets", "--group", "again", "--all-topics", "--to-earliest",
                "--execute")
    rows, result = describe_rows(broker, "again")
    assert all(row[3] == "0" for row in rows), describe_run(result)

    # Without --from-beginning: the committed (reset) offsets decide, not auto.offset.reset.
    again = run_script("flink-console-consumer.sh", "--bootstrap-server", broker.bootstrap,
                       "--topic", "replay", "--group", "again", "--max-messages",
                       str(MESSAGES), "--timeout-ms", "20000")
    assert set(again.stdout.split()) == sent, describe_run(again)

    deleted = groups_tool(broker, "--delete", "--group", "again")
    assert deleted.stdout.strip() == \
        "Deletion of requested consumer groups ('again') was successful.", describe_run(deleted)
    assert "again" not in groups_tool(broker, "--list").stdout.split()


def test_reset_is_refused_while_the_group_is_active(start_broker):
    """--reset-offsets --execute on a group with a live member fails with Kafka's message."""
    broker = start_broker(GROUP_OVERRIDES)
    create_topic(broker, "busy")
    member = start_group_consumer(broker, "busy", "active")
    try:
        wait_for_members(broker, "active", 1)
        refused = groups_tool(broker, "--reset-offsets", "--group", "active", "--topic", "busy",
                              "--to-latest", "--execute", check=False)
        assert refused.returncode == 1, describe_run(refused)
        assert ("Assignments can only be reset if the group 'active' is inactive, but the "
                "current state is Stable.") in refused.stderr, describe_run(refused)
    finally:
        stop(member)


def test_missing_group_and_bad_options_are_errors(broker):
    """Describing a group that does not exist, and a reset without a scenario, exit 1."""
    missing = groups_tool(broker, "--describe", "--group", "nobody", check=False)
    assert missing.returncode == 1 and "does not exist" in missing.stderr, describe_run(missing)
    bad = groups_tool(broker, "--reset-offsets", "--group", "g", "--all-topics", check=False)
    assert bad.returncode == 1 and "scenarios" in bad.stderr, describe_run(bad)
