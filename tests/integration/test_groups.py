"""Consumer groups on the real broker: partitions split across members, rebalances on leave,
join and crash, committed offsets that survive a restart; confluent-kafka, kafka-python, kcat."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

from confluent_kafka import Consumer, TopicPartition
from kafka import KafkaConsumer

from clients import confluent_produce
from support import check_history, create_topic, keyed_messages, require_tool

PARTITIONS = 6
DEADLINE_S = 60


class Member(threading.Thread):
    """A confluent-kafka group member polling in its own thread; commits after each message."""

    def __init__(self, bootstrap: str, group: str, topic: str, name: str, **config):
        super().__init__(daemon=True)
        # The classic protocol's timeouts are the client's to choose; KIP-848's are the broker's.
        timeouts = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500}
        if config.get("group.protocol") == "consumer":
            timeouts = {}
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": group, "client.id": name,
            "auto.offset.reset": "earliest", "enable.auto.commit": False, **timeouts, **config,
        })
        self.topic, self.name = topic, name
        self.consumed: list[tuple[int, int, str, str]] = []
        self.assignment: set[int] = set()
        self.stopping = threading.Event()
        self.errors: list[str] = []

    def run(self):
        # The assignment as the client holds it after each poll (callbacks differ between eager,
        # cooperative and KIP-848 rebalancing; the client's own view does not).
        self.consumer.subscribe([self.topic])
        while not self.stopping.is_set():
            message = self.consumer.poll(0.2)
            self.assignment = {tp.partition for tp in self.consumer.assignment()}
            if message is None:
                continue
            if message.error():
                self.errors.append(str(message.error()))
                continue
            self.consumed.append((message.partition(), message.offset(),
                                  message.key().decode(), message.value().decode()))
            self.consumer.commit(message=message, asynchronous=False)
        self.consumer.close()

    def stop(self):
        self.stopping.set()
        self.join(15)
        assert not self.is_alive(), f"{self.name} did not stop"


def wait_for(condition, what: str, timeout: float = DEADLINE_S):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def assignments_split(members: list[Member]) -> bool:
    """Every partition owned by exactly one of `members`, and each member owns some."""
    owned = [partition for member in members for partition in member.assignment]
    return sorted(owned) == list(range(PARTITIONS)) and all(member.assignment for member in members)


def test_three_members_split_partitions_and_rebalance(broker):
    """Three members split six partitions; each message once; leave and crash rebalance the rest."""
    topic = "grouped"
    create_topic(broker, topic, partitions=PARTITIONS)
    members = [Member(broker.bootstrap, "g3", topic, f"member-{index}") for index in range(3)]
    for member in members:
        member.start()
    wait_for(lambda: assignments_split(members), "three members to split the partitions")
    assert all(len(member.assignment) == 2 for member in members), [m.assignment for m in members]

    sent = keyed_messages(3000)
    confluent_produce(broker.bootstrap, topic, sent)
    wait_for(lambda: sum(len(member.consumed) for member in members) >= len(sent), "all messages")
    consumed = [row for member in members for row in member.consumed]
    check_history(sent, sorted(consumed), PARTITIONS)
    for member in members:
        assert {row[0] for row in member.consumed} <= member.assignment, (
            f"{member.name} consumed outside its assignment {member.assignment}")

    # A member leaving: the other two take over its partitions.
    members[0].stop()
    wait_for(lambda: assignments_split(members[1:]), "two members to own all partitions")

    # A member joining: three again.
    newcomer = Member(broker.bootstrap, "g3", topic, "member-3")
    newcomer.start()
    wait_for(lambda: assignments_split(members[1:] + [newcomer]), "the newcomer to get partitions")

    # A member killed: its session times out and the survivors cover every partition.
    killed = subprocess.Popen([sys.executable, "-c", KILLED_MEMBER, broker.bootstrap, topic],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert killed.stdout.readline().strip() == "assigned", "the doomed member never got partitions"
        survivors = members[1:] + [newcomer]
        wait_for(lambda: len([p for m in survivors for p in m.assignment]) < PARTITIONS,
                 "the doomed member to take partitions")
    finally:
        killed.kill()
        killed.wait(10)
    wait_for(lambda: assignments_split(survivors), "survivors to cover the killed member's partitions",
             timeout=30)
    for member in survivors:
        member.stop()
        assert not member.errors, member.errors


KILLED_MEMBER = """
import sys
from confluent_kafka import Consumer
consumer = Consumer({"bootstrap.servers": sys.argv[1], "group.id": "g3", "client.id": "doomed",
                     "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
def assigned(consumer, partitions):
    if partitions:
        print("assigned", flush=True)
consumer.subscribe([sys.argv[2]], on_assign=assigned)
while True:
    consumer.poll(0.2)
"""


def test_committed_offsets_survive_restart(broker):
    """Consume half with commits, restart the broker: the group resumes exactly at its commits."""
    topic = "resume"
    create_topic(broker, topic, partitions=PARTITIONS)
    sent = keyed_messages(2000)
    confluent_produce(broker.bootstrap, topic, sent)

    member = Member(broker.bootstrap, "resumers", topic, "first")
    member.start()
    wait_for(lambda: len(member.consumed) >= 1000, "the first half")
    member.stop()
    first = list(member.consumed)
    committed_end = {}
    for partition, offset, _, _ in first:
        committed_end[partition] = max(committed_end.get(partition, -1), offset) + 1

    broker.restart()
    probe = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "resumers"})
    committed = probe.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=20)
    probe.close()
    for tp in committed:
        assert tp.offset == committed_end.get(tp.partition, -1001), (
            f"partition {tp.partition}: committed {tp.offset} after restart, expected "
            f"{committed_end.get(tp.partition)}")

    member = Member(broker.bootstrap, "resumers", topic, "second")
    member.start()
    wait_for(lambda: len(first) + len(member.consumed) >= len(sent), "the second half")
    member.stop()
    check_history(sent, sorted(first + member.consumed), PARTITIONS)


def test_kcat_balanced_consumer(broker):
    """kcat -G (librdkafka's balanced consumer) reads every message through the group."""
    kcat = require_tool("kcat")
    topic = "kcat-group"
    create_topic(broker, topic, partitions=PARTITIONS)
    sent = keyed_messages(1000)
    confluent_produce(broker.bootstrap, topic, sent)
    result = subprocess.run(
        [kcat, "-b", broker.bootstrap, "-G", "kcat-group", "-X", "auto.offset.reset=earliest",
         "-e", "-q", "-f", "%p %o %k %s\n", topic],
        capture_output=True, text=True, timeout=DEADLINE_S)
    assert result.returncode == 0, result.stderr
    consumed = []
    for line in result.stdout.splitlines():
        partition, offset, key, value = line.split(" ", 3)
        consumed.append((int(partition), int(offset), key, value))
    check_history(sent, sorted(consumed), PARTITIONS)


def test_kafka_python_group_consumer(broker):
    """kafka-python's group consumer subscribes, gets every partition and commits its offsets."""
    topic = "kafka-python-group"
    create_topic(broker, topic, partitions=PARTITIONS)
    sent = keyed_messages(1000)
    confluent_produce(broker.bootstrap, topic, sent)
    consumer = KafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id="kp-group",
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             consumer_timeout_ms=5000)
    consumed = [(m.partition, m.offset, m.key.decode(), m.value.decode()) for m in consumer]
    consumer.commit()
    assert {tp.partition for tp in consumer.assignment()} == set(range(PARTITIONS))
    consumer.close()
    # kafka-python's leader rejoins right after its first sync, and Kafka (like Flink) starts a
    # new generation for a leader's rejoin; with no commits yet, what it read before that is
    # read again. Every record must arrive; repeats of the same offset are allowed.
    check_history(sent, sorted(set(consumed)), PARTITIONS)

    again = KafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id="kp-group",
                          auto_offset_reset="earliest", consumer_timeout_ms=3000)
    assert list(again) == [], "messages consumed again after a commit"
    again.close()


def test_kip848_consumer_protocol(broker):
    """group.protocol=consumer (KIP-848): the broker assigns, members split partitions, a leave
    hands partitions over, and commits hold for the next member."""
    topic = "kip848"
    create_topic(broker, topic, partitions=PARTITIONS)
    members = [Member(broker.bootstrap, "new-protocol", topic, f"member-{index}",
                      **{"group.protocol": "consumer"}) for index in range(3)]
    for member in members:
        member.start()
    # Members reach the target one heartbeat at a time: a split of 3/2/1 is a step on the way.
    wait_for(lambda: assignments_split(members) and all(len(m.assignment) == 2 for m in members),
             "the broker to split the partitions two by two")

    sent = keyed_messages(3000)
    confluent_produce(broker.bootstrap, topic, sent)
    wait_for(lambda: sum(len(member.consumed) for member in members) >= len(sent), "all messages")
    check_history(sent, sorted(row for member in members for row in member.consumed), PARTITIONS)

    members[0].stop()
    wait_for(lambda: assignments_split(members[1:]), "the two remaining members to own everything")
    for member in members[1:]:
        member.stop()
        assert not member.errors, member.errors

    again = Member(broker.bootstrap, "new-protocol", topic, "after", **{"group.protocol": "consumer"})
    again.start()
    wait_for(lambda: len(again.assignment) == PARTITIONS, "the last member to get every partition")
    time.sleep(2)
    again.stop()
    assert again.consumed == [], f"{len(again.consumed)} messages consumed again after commits"


def test_cooperative_sticky_members(broker):
    """Cooperative (incremental) rebalancing clients share partitions, each message once."""
    topic = "cooperative"
    create_topic(broker, topic, partitions=PARTITIONS)
    strategy = {"partition.assignment.strategy": "cooperative-sticky"}
    members = [Member(broker.bootstrap, "coop", topic, f"coop-{index}", **strategy) for index in range(2)]
    for member in members:
        member.start()
    wait_for(lambda: assignments_split(members), "two cooperative members to split the partitions")
    members.append(Member(broker.bootstrap, "coop", topic, "coop-2", **strategy))
    members[-1].start()
    wait_for(lambda: assignments_split(members) and all(len(m.assignment) == 2 for m in members),
             "three cooperative members with two partitions each")
    sent = keyed_messages(2000)
    confluent_produce(broker.bootstrap, topic, sent)
    wait_for(lambda: sum(len(member.consumed) for member in members) >= len(sent), "all messages")
    check_history(sent, sorted(row for member in members for row in member.consumed), PARTITIONS)
    for member in members:
        member.stop()
        assert not member.errors, member.errors


def test_static_member_restart_keeps_assignment(broker):
    """A static member (group.instance.id) restarting within its session takes back its
    partitions without a rebalance: the group's generation does not move."""
    topic = "static"
    create_topic(broker, topic, partitions=PARTITIONS)
    static = {"session.timeout.ms": 30000}
    members = [Member(broker.bootstrap, "static-group", topic, f"static-{index}",
                      **{"group.instance.id": f"instance-{index}", **static}) for index in range(2)]
    for member in members:
        member.start()
    wait_for(lambda: assignments_split(members), "two static members to split the partitions")
    generations = broker.wait_for_log(r"group static-group: generation (\d+)")
    before = max(map(int, generations))
    kept = set(members[1].assignment)

    members[1].stop()  # A static member's close does not leave the group.
    back = Member(broker.bootstrap, "static-group", topic, "static-1-again",
                  **{"group.instance.id": "instance-1", **static})
    back.start()
    wait_for(lambda: back.assignment == kept, "the restarted static member to get its partitions back")
    after = max(map(int, broker.wait_for_log(r"group static-group: generation (\d+)")))
    assert after == before, f"generation moved from {before} to {after}: a rebalance happened"
    for member in (members[0], back):
        member.stop()


def test_membership_survives_broker_restart(broker):
    """A stable group's membership is stored: after a broker restart the members go on
    heartbeating in the same generation, with no rebalance, and keep consuming."""
    topic = "membership"
    create_topic(broker, topic, partitions=PARTITIONS)
    members = [Member(broker.bootstrap, "durable", topic, f"durable-{index}") for index in range(2)]
    for member in members:
        member.start()
    wait_for(lambda: assignments_split(members), "two members to split the partitions")
    before = max(map(int, broker.wait_for_log(r"group durable: generation (\d+)")))
    assignments = [set(member.assignment) for member in members]

    broker.restart()
    sent = keyed_messages(600)
    confluent_produce(broker.bootstrap, topic, sent)
    wait_for(lambda: sum(len(member.consumed) for member in members) >= len(sent), "messages after restart")
    assert [set(member.assignment) for member in members] == assignments, "assignments changed"
    rebalanced = broker.wait_for_log(r"group durable: (generation \d+)", timeout=1, since_last_start=True)
    assert not rebalanced, f"the group rebalanced after the restart ({rebalanced}, was generation {before})"
    check_history(sent, sorted(row for member in members for row in member.consumed), PARTITIONS)
    for member in members:
        member.stop()


def test_kafka_python_members_split_partitions(broker):
    """Two kafka-python group members, each polling in its own thread as applications do,
    share six partitions between them and read everything."""
    topic = "kafka-python-split"
    create_topic(broker, topic, partitions=PARTITIONS)
    stopping = threading.Event()
    consumed: list[tuple[int, int, str, str]] = []
    assignments: dict[int, set[int]] = {}

    def member(index: int):
        consumer = KafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id="kp-split",
                                 auto_offset_reset="earliest", client_id=f"kp-{index}")
        while not stopping.is_set():
            for records in consumer.poll(timeout_ms=200).values():
                consumed.extend((r.partition, r.offset, r.key.decode(), r.value.decode()) for r in records)
            assignments[index] = {tp.partition for tp in consumer.assignment()}
        consumer.close()

    threads = [threading.Thread(target=member, args=(index,), daemon=True) for index in range(2)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: len(assignments) == 2 and all(assignments.values())
                 and sorted(p for owned in assignments.values() for p in owned) == list(range(PARTITIONS)),
                 "kafka-python members to split the partitions")
        sent = keyed_messages(1000)
        confluent_produce(broker.bootstrap, topic, sent)
        wait_for(lambda: len(set(consumed)) >= len(sent), "every message")
    finally:
        stopping.set()
        for thread in threads:
            thread.join(15)
    check_history(sent, sorted(set(consumed)), PARTITIONS)


def test_kcat_members_split_partitions(broker):
    """Two kcat -G processes in one group split the partitions and together read everything."""
    kcat = require_tool("kcat")
    topic = "kcat-split"
    create_topic(broker, topic, partitions=PARTITIONS)
    sent = keyed_messages(1000)
    command = [kcat, "-b", broker.bootstrap, "-G", "kcat-split", "-X", "auto.offset.reset=earliest",
               "-q", "-f", "%p %o %k %s\n", topic]
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
    try:
        # Produce only once both are members: the second join waits for the first member's
        # next heartbeat (3 s), and records produced before would all go to the first.
        joined = broker.wait_for_log(r"group kcat-split: generation \d+ with (2) member")
        assert joined, "the two kcat members never formed one generation"
        confluent_produce(broker.bootstrap, topic, sent)
        time.sleep(3)
    finally:
        for process in processes:
            process.terminate()
    outputs = [process.communicate(timeout=15)[0] for process in processes]
    consumed = set()
    for output in outputs:
        for line in output.splitlines():
            partition, offset, key, value = line.split(" ", 3)
            consumed.add((int(partition), int(offset), key, value))
    assert all(outputs), "one kcat member consumed nothing: the partitions were not split"
    check_history(sent, sorted(consumed), PARTITIONS)
