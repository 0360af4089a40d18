// The official Apache Kafka Java client (kafka-clients) driven through the scenarios of
// tests/integration/test_java_client.py and test_java_transactions.py, which check what it prints;
// tests/integration/java_clients.py compiles this file against each client version's jars (plain
// javac, no build tool).
//
// Usage: java JavaClient <scenario> key=value...
// Scenarios: round-trip, admin, alter-list, group, offsets, txn, txn-ctp, txn-fence (see each
// method). Input records, where a scenario takes them, come on stdin one per line: key TAB value
// [TAB header-name=value]...
// Output: one JSON object on stdout; the client's own log goes to stderr. Exit code 0 when the
// scenario ran to its end, 1 (with {"ok": false, "error": ...}) when a call it needs failed.
// The checks are the test's: this program reports what the client saw, including the errors it
// got from calls that are expected to fail, and judges nothing but its own progress.

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.CreateTopicsOptions;
import org.apache.kafka.clients.admin.CreateTopicsResult;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.ListTopicsOptions;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public final class JavaClient {
    /** Every wait is bounded: a broken broker fails the scenario, never hangs it. */
    static final long DEADLINE_MS = 60_000;
    static final Duration POLL = Duration.ofMillis(100);
    /** After the last expected record, how long consumers keep polling for anything extra. */
    static final long TRAILING_POLL_MS = 500;

    public static void main(String[] argv) {
        Map<String, Object> out;
        int code = 0;
        try {
            if (argv.length < 1) {
                throw new IllegalArgumentException("usage: JavaClient <scenario> key=value...");
            }
            Map<String, String> args = new HashMap<>();
            for (int i = 1; i < argv.length; i++) {
                int eq = argv[i].indexOf('=');
                if (eq < 0) {
                    throw new IllegalArgumentException("not key=value: " + argv[i]);
                }
                args.put(argv[i].substring(0, eq), argv[i].substring(eq + 1));
            }
            if (args.containsKey("client.config")) {
                try (java.io.FileReader reader = new java.io.FileReader(args.get("client.config"))) {
                    CLIENT_CONFIG.load(reader);
                }
            }
            switch (argv[0]) {
                case "round-trip": out = roundTrip(new Args(args)); break;
                case "admin": out = admin(new Args(args)); break;
                case "alter-list": out = alterList(new Args(args)); break;
                case "group": out = group(new Args(args)); break;
                case "offsets": out = offsets(new Args(args)); break;
                case "txn": out = transactions(new Args(args)); break;
                case "txn-ctp": out = consumeTransformProduce(new Args(args)); break;
                case "txn-fence": out = fence(new Args(args)); break;
                case "txn-timeout": out = timedOut(new Args(args)); break;
                case "cluster-id": out = clusterId(new Args(args)); break;
                default: throw new IllegalArgumentException("unknown scenario " + argv[0]);
            }
            out.put("ok", true);
        } catch (Throwable t) {
            t.printStackTrace();
            out = new LinkedHashMap<>();
            out.put("ok", false);
            out.put("error", describe(t));
            code = 1;
        }
        System.out.println(Json.write(out));
        System.out.flush();
        // Exits even if a client thread is stuck, so that the test sees the answer at once.
        System.exit(code);
    }

    /** Settings every client takes on top of its own (security.protocol, ssl.*, sasl.*), from
     * the properties file named by the client.config=... argument. */
    static final Properties CLIENT_CONFIG = new Properties();

    /** The scenario's key=value arguments. */
    static final class Args {
        final Map<String, String> map;

        Args(Map<String, String> map) {
            this.map = map;
        }

        String get(String key) {
            String value = map.get(key);
            if (value == null) {
                throw new IllegalArgumentException("missing argument " + key + "=...");
            }
            return value;
        }

        String get(String key, String fallback) {
            return map.getOrDefault(key, fallback);
        }

        int integer(String key) {
            return Integer.parseInt(get(key));
        }

        int integer(String key, int fallback) {
            return map.containsKey(key) ? Integer.parseInt(map.get(key)) : fallback;
        }
    }

    // ---- produce and consume ------------------------------------------------------------------

    /** A record as the test sends it: key and value strings, headers as (name, value) pairs. */
    static final class Input {
        final String key;
        final String value;
        final List<Header> headers = new ArrayList<>();

        Input(String line) {
            String[] fields = line.split("\t", -1);
            key = fields[0];
            value = fields[1];
            for (int i = 2; i < fields.length; i++) {
                int eq = fields[i].indexOf('=');
                headers.add(new RecordHeader(fields[i].substring(0, eq),
                        fields[i].substring(eq + 1).getBytes(StandardCharsets.UTF_8)));
            }
        }
    }

    static List<Input> readInput() throws Exception {
        List<Input> inputs = new ArrayList<>();
        BufferedReader reader =
                new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        for (String line = reader.readLine(); line != null; line = reader.readLine()) {
            if (!line.isEmpty()) {
                inputs.add(new Input(line));
            }
        }
        return inputs;
    }

    static Properties producerConfig(Args args) {
        Properties config = new Properties();
        config.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, args.get("bootstrap"));
        config.put(ProducerConfig.CLIENT_ID_CONFIG, args.get("client.id", "java-producer"));
        config.put(ProducerConfig.ACKS_CONFIG, args.get("acks", "all"));
        config.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, args.get("idempotence", "true"));
        config.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, args.get("codec", "none"));
        config.put(ProducerConfig.LINGER_MS_CONFIG, args.get("linger.ms", "5"));
        config.put(ProducerConfig.BATCH_SIZE_CONFIG, args.get("batch.size", "16384"));
        config.put(ProducerConfig.MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION,
                args.get("max.in.flight", "5"));
        config.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, (int) DEADLINE_MS);
        config.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        config.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        config.putAll(CLIENT_CONFIG);
        return config;
    }

    static Properties consumerConfig(String bootstrap, String clientId) {
        Properties config = new Properties();
        config.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        config.put(ConsumerConfig.CLIENT_ID_CONFIG, clientId);
        config.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        config.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        config.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG,
                StringDeserializer.class.getName());
        config.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG,
                StringDeserializer.class.getName());
        config.putAll(CLIENT_CONFIG);
        return config;
    }

    /** Sends `inputs` in order and waits for every acknowledgement: [partition, offset] each. */
    static List<List<Object>> produce(Args args, String topic, List<Input> inputs)
            throws Exception {
        List<Future<RecordMetadata>> futures = new ArrayList<>();
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(producerConfig(args))) {
            for (Input input : inputs) {
                futures.add(producer.send(
                        new ProducerRecord<>(topic, null, input.key, input.value, input.headers)));
            }
            producer.flush();
        }
        List<List<Object>> acks = new ArrayList<>();
        for (Future<RecordMetadata> future : futures) {
            RecordMetadata metadata = future.get(DEADLINE_MS, TimeUnit.MILLISECONDS);
            acks.add(List.of(metadata.partition(), metadata.offset()));
        }
        return acks;
    }

    static List<Object> consumed(ConsumerRecord<String, String> record) {
        List<List<String>> headers = new ArrayList<>();
        for (Header header : record.headers()) {
            headers.add(List.of(header.key(),
                    new String(header.value(), StandardCharsets.UTF_8)));
        }
        return List.of(record.partition(), record.offset(), record.key(), record.value(), headers,
                record.timestamp());
    }

    /** Every record of every partition of `topic` from the beginning (assign, no group), until
     * `count` have come and then TRAILING_POLL_MS more: [partition, offset, key, value, headers,
     * timestamp] each, in the order polled. */
    static List<List<Object>> consumeAll(String bootstrap, String topic, int count) {
        return consumeAll(bootstrap, topic, count, "read_uncommitted");
    }

    /** consumeAll at an isolation level: read_committed or read_uncommitted. */
    static List<List<Object>> consumeAll(String bootstrap, String topic, int count,
                                         String isolation) {
        List<List<Object>> records = new ArrayList<>();
        Properties config = consumerConfig(bootstrap, "java-consumer");
        config.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(config)) {
            List<TopicPartition> partitions = new ArrayList<>();
            Duration timeout = Duration.ofMillis(DEADLINE_MS);
            for (PartitionInfo info : consumer.partitionsFor(topic, timeout)) {
                partitions.add(new TopicPartition(topic, info.partition()));
            }
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            long deadline = System.currentTimeMillis() + DEADLINE_MS;
            long stop = Long.MAX_VALUE;
            while (System.currentTimeMillis() < Math.min(deadline, stop)) {
                for (ConsumerRecord<String, String> record : consumer.poll(POLL)) {
                    records.add(consumed(record));
                }
                if (records.size() >= count && stop == Long.MAX_VALUE) {
                    stop = System.currentTimeMillis() + TRAILING_POLL_MS;
                }
            }
        }
        return records;
    }

    /** round-trip bootstrap= topic= codec= idempotence= acks=: produces stdin's records, then
     * consumes the topic from the beginning. */
    static Map<String, Object> roundTrip(Args args) throws Exception {
        String topic = args.get("topic");
        List<Input> inputs = readInput();
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("acks", produce(args, topic, inputs));
        out.put("records", consumeAll(args.get("bootstrap"), topic, inputs.size()));
        return out;
    }

    // ---- admin --------------------------------------------------------------------------------

    static Admin admin(String bootstrap) {
        Properties config = new Properties();
        config.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        config.put(AdminClientConfig.CLIENT_ID_CONFIG, "java-admin");
        config.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, (int) DEADLINE_MS);
        config.putAll(CLIENT_CONFIG);
        return Admin.create(config);
    }

    /** cluster-id bootstrap=: the cluster id an admin client gets, or the error it gets. */
    static Map<String, Object> clusterId(Args args) {
        Map<String, Object> out = new LinkedHashMap<>();
        try (Admin admin = admin(args.get("bootstrap"))) {
            out.put("cluster_id", step(() -> admin.describeCluster().clusterId().get(
                    DEADLINE_MS, TimeUnit.MILLISECONDS)));
        }
        return out;
    }

    /** Runs one admin step: {"result": ...} or {"error": exception class, "message": ...}. */
    static Map<String, Object> step(Callable<Object> call) {
        Map<String, Object> out = new LinkedHashMap<>();
        try {
            out.put("result", call.call());
        } catch (Exception e) {
            Throwable cause = unwrap(e);
            out.put("error", cause.getClass().getSimpleName());
            out.put("message", String.valueOf(cause.getMessage()));
        }
        return out;
    }

    static Map<String, Object> describeTopic(TopicDescription description) {
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("name", description.name());
        out.put("internal", description.isInternal());
        out.put("topic_id", String.valueOf(description.topicId()));
        List<Object> partitions = new ArrayList<>();
        for (TopicPartitionInfo info : description.partitions()) {
            Map<String, Object> partition = new LinkedHashMap<>();
            partition.put("partition", info.partition());
            partition.put("leader", info.leader() == null ? null : info.leader().id());
            partition.put("replicas", nodeIds(info.replicas()));
            partition.put("isr", nodeIds(info.isr()));
            partitions.add(partition);
        }
        out.put("partitions", partitions);
        return out;
    }

    static List<Integer> nodeIds(List<Node> nodes) {
        List<Integer> ids = new ArrayList<>();
        for (Node node : nodes) {
            ids.add(node.id());
        }
        return ids;
    }

    /** name -> {value, source, default, read_only, sensitive}, as ConfigEntry has them. */
    static Map<String, Object> configs(Config config) {
        Map<String, Object> out = new TreeMap<>();
        for (ConfigEntry entry : config.entries()) {
            Map<String, Object> value = new LinkedHashMap<>();
            value.put("value", entry.value());
            value.put("source", entry.source().name());
            value.put("default", entry.isDefault());
            value.put("read_only", entry.isReadOnly());
            value.put("sensitive", entry.isSensitive());
            out.put(entry.name(), value);
        }
        return out;
    }

    static Object describeConfigs(Admin admin, ConfigResource resource) throws Exception {
        return configs(admin.describeConfigs(List.of(resource)).all().get().get(resource));
    }

    static Object describe(Admin admin, String topic) throws Exception {
        return describeTopic(admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic));
    }

    static Object alter(Admin admin, ConfigResource resource, AlterConfigOp... ops)
            throws Exception {
        admin.incrementalAlterConfigs(Map.of(resource, List.of(ops))).all().get();
        return "altered";
    }

    static AlterConfigOp set(String name, String value) {
        return new AlterConfigOp(new ConfigEntry(name, value), AlterConfigOp.OpType.SET);
    }

    static AlterConfigOp op(AlterConfigOp.OpType type, String name, String value) {
        return new AlterConfigOp(new ConfigEntry(name, value), type);
    }

    static Set<String> listTopics(Admin admin, boolean internal) throws Exception {
        return new TreeSet<>(admin.listTopics(new ListTopicsOptions().listInternal(internal))
                .names().get());
    }

    /** admin bootstrap= topic=: every admin call of the test on `topic` (and `topic`-other,
     * `topic`-missing), in order, each step's answer or error by name. */
    static Map<String, Object> admin(Args args) throws Exception {
        String bootstrap = args.get("bootstrap");
        String topic = args.get("topic");
        String other = topic + "-other";
        String missing = topic + "-missing";
        ConfigResource resource = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        Map<String, Object> steps = new LinkedHashMap<>();
        try (Admin admin = admin(bootstrap)) {
            Map<String, String> configs = Map.of("retention.ms", "3600000",
                    "cleanup.policy", "compact");
            NewTopic newTopic = new NewTopic(topic, 3, (short) 1).configs(configs);

            steps.put("create_validate_only", step(() -> {
                admin.createTopics(List.of(newTopic), new CreateTopicsOptions().validateOnly(true))
                        .all().get();
                return listTopics(admin, false).contains(topic);
            }));
            steps.put("create_invalid_config", step(() -> {
                admin.createTopics(List.of(new NewTopic(topic, 3, (short) 1)
                        .configs(Map.of("cleanup.policy", "forever")))).all().get();
                return "created";
            }));
            steps.put("create", step(() -> {
                CreateTopicsResult result = admin.createTopics(List.of(newTopic));
                result.all().get();
                Map<String, Object> out = new LinkedHashMap<>();
                out.put("partitions", result.numPartitions(topic).get());
                out.put("replication_factor", result.replicationFactor(topic).get());
                out.put("topic_id", String.valueOf(result.topicId(topic).get()));
                out.put("configs", configs(result.config(topic).get()));
                return out;
            }));
            steps.put("create_default_partitions", step(() -> {
                admin.createTopics(List.of(new NewTopic(other, java.util.Optional.empty(),
                        java.util.Optional.empty()))).all().get();
                return "created";
            }));
            steps.put("create_again", step(() -> {
                admin.createTopics(List.of(newTopic)).all().get();
                return "created";
            }));
            steps.put("list", step(() -> listTopics(admin, false)));
            steps.put("list_internal", step(() -> listTopics(admin, true)));
            steps.put("describe", step(() -> describe(admin, topic)));
            steps.put("describe_other", step(() -> describe(admin, other)));
            steps.put("describe_missing", step(() -> describe(admin, missing)));
            steps.put("describe_configs", step(() -> describeConfigs(admin, resource)));
            steps.put("describe_broker_configs", step(() -> describeConfigs(admin,
                    new ConfigResource(ConfigResource.Type.BROKER, args.get("broker.id")))));
            steps.put("alter_configs", step(() -> alter(admin, resource,
                    set("retention.ms", "7200000"), set("max.message.bytes", "2097152"),
                    op(AlterConfigOp.OpType.DELETE, "cleanup.policy", null))));
            steps.put("describe_configs_altered", step(() -> describeConfigs(admin, resource)));
            steps.put("alter_invalid_value", step(() -> alter(admin, resource,
                    set("retention.ms", "not-a-number"))));
            steps.put("alter_unknown_config", step(() -> alter(admin, resource,
                    set("no.such.config", "1"))));
            steps.put("alter_missing_topic", step(() -> alter(admin,
                    new ConfigResource(ConfigResource.Type.TOPIC, missing),
                    set("retention.ms", "1000"))));
            steps.put("describe_configs_after_invalid", step(() -> describeConfigs(admin,
                    resource)));

            steps.put("create_partitions", step(() -> {
                admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(5))).all().get();
                return describe(admin, topic);
            }));
            steps.put("create_partitions_shrink", step(() -> {
                admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(2))).all().get();
                return "shrunk";
            }));
            steps.put("create_partitions_missing", step(() -> {
                admin.createPartitions(Map.of(missing, NewPartitions.increaseTo(2))).all().get();
                return "grown";
            }));

            // Ten records on partition 0 and 4 (a new one), then delete below offset 4 and 10.
            Properties producer = producerConfig(args);
            try (KafkaProducer<String, String> records = new KafkaProducer<>(producer)) {
                for (int i = 0; i < 10; i++) {
                    records.send(new ProducerRecord<>(topic, 0, "k" + i, "v" + i));
                    records.send(new ProducerRecord<>(topic, 4, "k" + i, "v" + i));
                }
                records.flush();
            }
            TopicPartition p0 = new TopicPartition(topic, 0);
            TopicPartition p4 = new TopicPartition(topic, 4);
            steps.put("delete_records", step(() -> {
                Map<String, Object> out = new TreeMap<>();
                admin.deleteRecords(Map.of(p0, RecordsToDelete.beforeOffset(4),
                        p4, RecordsToDelete.beforeOffset(10))).lowWatermarks()
                        .forEach((tp, future) -> out.put(String.valueOf(tp.partition()),
                                get(future).lowWatermark()));
                return out;
            }));
            steps.put("delete_records_beyond_end", step(() -> admin.deleteRecords(
                    Map.of(p0, RecordsToDelete.beforeOffset(11))).all().get()));
            steps.put("offsets_after_delete_records", step(() -> {
                Map<String, Object> out = new TreeMap<>();
                for (TopicPartition tp : List.of(p0, p4)) {
                    out.put(tp.partition() + ".earliest", admin.listOffsets(Map.of(tp,
                            OffsetSpec.earliest())).partitionResult(tp).get().offset());
                    out.put(tp.partition() + ".latest", admin.listOffsets(Map.of(tp,
                            OffsetSpec.latest())).partitionResult(tp).get().offset());
                }
                return out;
            }));

            steps.put("describe_cluster", step(() -> {
                DescribeClusterResult cluster = admin.describeCluster();
                Map<String, Object> out = new LinkedHashMap<>();
                out.put("cluster_id", cluster.clusterId().get());
                Node controller = cluster.controller().get();
                out.put("controller", controller == null ? null : controller.id());
                List<Object> nodes = new ArrayList<>();
                for (Node node : cluster.nodes().get()) {
                    nodes.add(List.of(node.id(), node.host(), node.port()));
                }
                out.put("nodes", nodes);
                return out;
            }));

            steps.put("delete", step(() -> {
                admin.deleteTopics(List.of(topic, other)).all().get();
                return listTopics(admin, false);
            }));
            steps.put("delete_again", step(() -> {
                admin.deleteTopics(List.of(topic)).all().get();
                return "deleted";
            }));
            steps.put("describe_deleted", step(() -> describe(admin, topic)));
        }
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("steps", steps);
        return out;
    }

    /** alter-list bootstrap= topic=: APPEND to a list config at its default (cleanup.policy of a
     * new topic), then SUBTRACT from it, describing the topic's configs after each. */
    static Map<String, Object> alterList(Args args) throws Exception {
        String topic = args.get("topic");
        ConfigResource resource = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        Map<String, Object> steps = new LinkedHashMap<>();
        try (Admin admin = admin(args.get("bootstrap"))) {
            admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1))).all().get();
            steps.put("append", step(() -> alter(admin, resource,
                    op(AlterConfigOp.OpType.APPEND, "cleanup.policy", "compact"))));
            steps.put("describe_appended", step(() -> describeConfigs(admin, resource)));
            steps.put("subtract", step(() -> alter(admin, resource,
                    op(AlterConfigOp.OpType.SUBTRACT, "cleanup.policy", "delete"))));
            steps.put("describe_subtracted", step(() -> describeConfigs(admin, resource)));
            admin.deleteTopics(List.of(topic)).all().get();
        }
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("steps", steps);
        return out;
    }

    // ---- consumer groups ----------------------------------------------------------------------

    /** One group member polling in its own thread; commits synchronously after every poll that
     * returned records, so that a rebalance never hands on uncommitted records. */
    static final class Member implements Runnable, ConsumerRebalanceListener {
        final String name;
        final Properties config;
        final String topic;
        final List<List<Object>> consumed = Collections.synchronizedList(new ArrayList<>());
        final List<String> events = Collections.synchronizedList(new ArrayList<>());
        final List<String> errors = Collections.synchronizedList(new ArrayList<>());
        final Thread thread;
        volatile Set<Integer> assignment = Set.of();
        volatile String memberId = "";
        volatile boolean stopping;
        volatile int commits;
        volatile int staleCommits;
        volatile int lost;
        KafkaConsumer<String, String> consumer;

        Member(String name, Properties config, String topic) {
            this.name = name;
            this.config = config;
            this.topic = topic;
            this.thread = new Thread(this, name);
            thread.setDaemon(true);
        }

        @Override
        public void run() {
            try {
                consumer = new KafkaConsumer<>(config);
                consumer.subscribe(List.of(topic), this);
                while (!stopping) {
                    ConsumerRecords<String, String> records;
                    try {
                        records = consumer.poll(POLL);
                    } catch (Exception e) {
                        errors.add("poll: " + describe(e));
                        if (errors.size() > 100) {
                            break;
                        }
                        continue;
                    }
                    Set<Integer> owned = new TreeSet<>();
                    for (TopicPartition tp : consumer.assignment()) {
                        owned.add(tp.partition());
                    }
                    assignment = owned;
                    memberId = consumer.groupMetadata().memberId();
                    for (ConsumerRecord<String, String> record : records) {
                        consumed.add(List.of(record.partition(), record.offset(), record.key(),
                                record.value()));
                    }
                    if (!records.isEmpty()) {
                        commit();
                    }
                }
            } catch (Throwable t) {
                errors.add("member: " + describe(t));
            } finally {
                if (consumer != null) {
                    try {
                        consumer.close();
                    } catch (Exception e) {
                        errors.add("close: " + describe(e));
                    }
                }
                assignment = Set.of();
            }
        }

        /** commitSync, sent again while it is refused for a stale member epoch: a commit that
         * leaves while the heartbeat moving this member to its next epoch is answered carries
         * the epoch before, and Kafka's coordinator refuses it as Flink's does; the client knows
         * its new epoch as soon as that answer is in. */
        void commit() throws InterruptedException {
            for (int attempt = 1; ; attempt++) {
                try {
                    consumer.commitSync(Duration.ofMillis(DEADLINE_MS));
                    commits++;
                    return;
                } catch (Exception e) {
                    String error = describe(e);
                    if (attempt < 10 && error.contains("stale member epoch")) {
                        staleCommits++;
                        Thread.sleep(100);
                        continue;
                    }
                    errors.add("commitSync: " + error);
                    return;
                }
            }
        }

        void start() {
            thread.start();
        }

        void stop() throws InterruptedException {
            stopping = true;
            thread.join(DEADLINE_MS);
            if (thread.isAlive()) {
                throw new AssertionError(name + " did not stop within " + DEADLINE_MS + " ms");
            }
        }

        String event(String what, Collection<TopicPartition> partitions) {
            Set<Integer> numbers = new TreeSet<>();
            for (TopicPartition tp : partitions) {
                numbers.add(tp.partition());
            }
            return String.format("%d %s %s", System.currentTimeMillis(), what, numbers);
        }

        @Override
        public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
            events.add(event("revoked", partitions));
        }

        @Override
        public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
            events.add(event("assigned", partitions));
        }

        @Override
        public void onPartitionsLost(Collection<TopicPartition> partitions) {
            lost++;
            events.add(event("lost", partitions));
        }

        Map<String, Object> report() {
            Map<String, Object> out = new LinkedHashMap<>();
            out.put("name", name);
            out.put("member_id", memberId);
            out.put("consumed", new ArrayList<>(consumed));
            out.put("events", new ArrayList<>(events));
            out.put("errors", new ArrayList<>(errors));
            out.put("commits", commits);
            out.put("stale_commits", staleCommits);
            out.put("lost", lost);
            return out;
        }
    }

    /** A producer thread sending keyed records like the test's keyed_messages (value
     * key.sequence.index), `count` of them or, with count 0, until stopped; paced at `rate` a
     * second (0: as fast as it can). */
    static final class Flow implements Runnable {
        final Properties config;
        final String topic;
        final int count;
        final int rate;
        final int keys;
        final List<Object[]> sent = Collections.synchronizedList(new ArrayList<>());
        final List<String> errors = Collections.synchronizedList(new ArrayList<>());
        final Thread thread = new Thread(this, "producer");
        volatile boolean stopping;

        Flow(Properties config, String topic, int count, int rate, int keys) {
            this.config = config;
            this.topic = topic;
            this.count = count;
            this.rate = rate;
            this.keys = keys;
            thread.setDaemon(true);
        }

        @Override
        public void run() {
            Map<String, Integer> sequences = new HashMap<>();
            long start = System.nanoTime();
            try (KafkaProducer<String, String> producer = new KafkaProducer<>(config)) {
                for (int index = 0; count == 0 ? !stopping : index < count; index++) {
                    if (rate > 0) {
                        long due = start + index * 1_000_000_000L / rate;
                        long wait = due - System.nanoTime();
                        if (wait > 0) {
                            Thread.sleep(wait / 1_000_000, (int) (wait % 1_000_000));
                        }
                    }
                    String key = "key-" + (index % keys);
                    int sequence = sequences.merge(key, 1, Integer::sum) - 1;
                    String value = String.format("%s.%06d.%d", key, sequence, index);
                    Object[] row = {key, value, null, null};
                    sent.add(row);
                    producer.send(new ProducerRecord<>(topic, key, value), (metadata, error) -> {
                        if (error != null) {
                            errors.add("send " + value + ": " + describe(error));
                        } else {
                            row[2] = metadata.partition();
                            row[3] = metadata.offset();
                        }
                    });
                }
                producer.flush();
            } catch (Throwable t) {
                errors.add("producer: " + describe(t));
            }
        }

        List<Object> report() {
            List<Object> out = new ArrayList<>();
            synchronized (sent) {
                for (Object[] row : sent) {
                    out.add(java.util.Arrays.asList(row));
                }
            }
            return out;
        }
    }

    /** Whether the live members own every partition between them, each one some (when there are
     * enough partitions), none twice. */
    static boolean split(List<Member> live, int partitions) {
        List<Integer> owned = new ArrayList<>();
        for (Member member : live) {
            if (member.assignment.isEmpty() && live.size() <= partitions) {
                return false;
            }
            owned.addAll(member.assignment);
        }
        Collections.sort(owned);
        List<Integer> all = new ArrayList<>();
        for (int i = 0; i < partitions; i++) {
            all.add(i);
        }
        return owned.equals(all);
    }

    static String assignments(List<Member> members) {
        StringBuilder out = new StringBuilder();
        for (Member member : members) {
            out.append(String.format(" %s=%s", member.name, member.assignment));
        }
        return out.toString().trim();
    }

    static int consumedCount(List<Member> members) {
        int total = 0;
        for (Member member : members) {
            total += member.consumed.size();
        }
        return total;
    }

    /** group bootstrap= topic= group= protocol=classic|consumer partitions= plan= count= rate=:
     * members of one group come and go as `plan` says while a producer sends records, then the
     * group's committed offsets are read back through the admin client.
     *
     * The plan is a space-separated list of steps: +N starts member N, -N stops (closes) it, =
     * waits until the live members split the partitions between them, ~ sleeps a second, p starts
     * the producer. At the end the producer stops (count=0) or finishes its count, the members
     * left consume everything acknowledged, and close. */
    static Map<String, Object> group(Args args) throws Exception {
        String bootstrap = args.get("bootstrap");
        String topic = args.get("topic");
        String group = args.get("group");
        String protocol = args.get("protocol");
        int partitions = args.integer("partitions");
        Flow flow = new Flow(producerConfig(args), topic, args.integer("count", 0),
                args.integer("rate", 0), args.integer("keys", 50));
        Map<Integer, Member> members = new TreeMap<>();
        List<Member> live = new ArrayList<>();
        List<String> timeline = new ArrayList<>();
        long started = System.currentTimeMillis();

        for (String step : args.get("plan").trim().split("\\s+")) {
            timeline.add(String.format("%d %s", System.currentTimeMillis() - started, step));
            if (step.startsWith("+")) {
                int number = Integer.parseInt(step.substring(1));
                Properties config = consumerConfig(bootstrap, "member-" + number);
                config.put(ConsumerConfig.GROUP_ID_CONFIG, group);
                config.put("group.protocol", protocol);
                if (protocol.equals("classic")) {
                    // The classic protocol's timeouts are the client's to choose; KIP-848's are
                    // the broker's (the client refuses them).
                    config.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "6000");
                    config.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, "500");
                }
                Member member = new Member("member-" + number, config, topic);
                members.put(number, member);
                live.add(member);
                member.start();
            } else if (step.startsWith("-")) {
                Member member = members.get(Integer.parseInt(step.substring(1)));
                live.remove(member);
                member.stop();
            } else if (step.equals("=")) {
                long deadline = System.currentTimeMillis() + DEADLINE_MS;
                while (!split(live, partitions)) {
                    if (System.currentTimeMillis() > deadline) {
                        throw new AssertionError("the members did not split the partitions: "
                                + assignments(live));
                    }
                    Thread.sleep(50);
                }
                timeline.add(String.format("%d split %s", System.currentTimeMillis() - started,
                        assignments(live)));
            } else if (step.equals("~")) {
                Thread.sleep(1000);
            } else if (step.equals("p")) {
                flow.thread.start();
            } else {
                throw new IllegalArgumentException("unknown plan step " + step);
            }
        }

        flow.stopping = true;
        flow.thread.join(DEADLINE_MS);
        if (flow.thread.isAlive()) {
            throw new AssertionError("the producer did not finish");
        }
        int sent = flow.sent.size();
        long deadline = System.currentTimeMillis() + DEADLINE_MS;
        List<Member> all = new ArrayList<>(members.values());
        while (consumedCount(all) < sent && System.currentTimeMillis() < deadline) {
            Thread.sleep(50);
        }
        timeline.add(String.format("%d consumed %d of %d", System.currentTimeMillis() - started,
                consumedCount(all), sent));
        Thread.sleep(TRAILING_POLL_MS);
        for (Member member : live) {
            member.stop();
        }
        timeline.add(String.format("%d closed", System.currentTimeMillis() - started));

        Map<String, Object> out = new LinkedHashMap<>();
        try (Admin admin = admin(bootstrap)) {
            Map<String, Object> committed = new TreeMap<>();
            admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get()
                    .forEach((tp, offset) -> committed.put(String.valueOf(tp.partition()),
                            offset == null ? null : offset.offset()));
            out.put("committed", committed);
            Map<TopicPartition, OffsetSpec> latest = new HashMap<>();
            for (int i = 0; i < partitions; i++) {
                latest.put(new TopicPartition(topic, i), OffsetSpec.latest());
            }
            Map<String, Object> ends = new TreeMap<>();
            for (Map.Entry<TopicPartition, ListOffsetsResult.ListOffsetsResultInfo> entry :
                    admin.listOffsets(latest).all().get().entrySet()) {
                ends.put(String.valueOf(entry.getKey().partition()), entry.getValue().offset());
            }
            out.put("end_offsets", ends);
        }
        List<Object> reports = new ArrayList<>();
        for (Member member : all) {
            reports.add(member.report());
        }
        out.put("members", reports);
        out.put("sent", flow.report());
        out.put("producer_errors", new ArrayList<>(flow.errors));
        out.put("timeline", timeline);
        return out;
    }

    // ---- offsets ------------------------------------------------------------------------------

    static Map<String, Object> byPartition(Map<TopicPartition, ?> map,
                                           java.util.function.Function<Object, Object> value) {
        Map<String, Object> out = new TreeMap<>();
        map.forEach((tp, v) -> out.put(String.valueOf(tp.partition()), v == null ? null
                : value.apply(v)));
        return out;
    }

    static Object committedView(Object value) {
        OffsetAndMetadata offset = (OffsetAndMetadata) value;
        return List.of(offset.offset(), offset.metadata());
    }

    static Object timestampView(Object value) {
        OffsetAndTimestamp offset = (OffsetAndTimestamp) value;
        return List.of(offset.offset(), offset.timestamp());
    }

    /** The first record polled from each of `partitions` (others' are dropped): partition ->
     * [offset, key, value, timestamp]. */
    static Map<String, Object> firstPolled(KafkaConsumer<String, String> consumer,
                                           Collection<TopicPartition> partitions) {
        Map<String, Object> first = new TreeMap<>();
        long deadline = System.currentTimeMillis() + DEADLINE_MS;
        while (first.size() < partitions.size() && System.currentTimeMillis() < deadline) {
            for (ConsumerRecord<String, String> record : consumer.poll(POLL)) {
                if (!partitions.contains(new TopicPartition(record.topic(), record.partition()))) {
                    continue;
                }
                first.putIfAbsent(String.valueOf(record.partition()), List.of(record.offset(),
                        record.key(), record.value(), record.timestamp()));
            }
        }
        return first;
    }

    /** offsets bootstrap= topic= group= base.timestamp=: records with known timestamps on two
     * partitions (10 on 0, 5 on 1; record i at base + i seconds), then the consumer's offset
     * calls: beginning/end offsets, offsetsForTimes, commitSync of explicit offsets with
     * metadata, committed(), a new member resuming at the commits, seek, and the admin's view. */
    static Map<String, Object> offsets(Args args) throws Exception {
        String bootstrap = args.get("bootstrap");
        String topic = args.get("topic");
        String group = args.get("group");
        long base = Long.parseLong(args.get("base.timestamp"));
        TopicPartition p0 = new TopicPartition(topic, 0);
        TopicPartition p1 = new TopicPartition(topic, 1);
        List<TopicPartition> both = List.of(p0, p1);
        Map<String, Object> out = new LinkedHashMap<>();

        try (Admin admin = admin(bootstrap)) {
            admin.createTopics(List.of(new NewTopic(topic, 2, (short) 1))).all().get();
            try (KafkaProducer<String, String> producer =
                         new KafkaProducer<>(producerConfig(args))) {
                for (int i = 0; i < 10; i++) {
                    producer.send(new ProducerRecord<>(topic, 0, base + i * 1000L, "p0-k" + i,
                            "p0-v" + i));
                    if (i < 5) {
                        producer.send(new ProducerRecord<>(topic, 1, base + i * 1000L,
                                "p1-k" + i, "p1-v" + i));
                    }
                }
                producer.flush();
            }

            Properties config = consumerConfig(bootstrap, "offsets-1");
            config.put(ConsumerConfig.GROUP_ID_CONFIG, group);
            config.put("group.protocol", "classic");
            try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(config)) {
                consumer.assign(both);
                out.put("beginning", byPartition(consumer.beginningOffsets(both), v -> v));
                out.put("end", byPartition(consumer.endOffsets(both), v -> v));
                out.put("committed_before", byPartition(
                        consumer.committed(new HashSet<>(both)), JavaClient::committedView));
                out.put("for_times", byPartition(consumer.offsetsForTimes(
                        Map.of(p0, base + 3500, p1, base + 4000)), JavaClient::timestampView));
                out.put("for_times_first", byPartition(consumer.offsetsForTimes(
                        Map.of(p0, base - 60_000, p1, base)), JavaClient::timestampView));
                out.put("for_times_after_last", byPartition(consumer.offsetsForTimes(
                        Map.of(p0, base + 9001, p1, base + 4001)), JavaClient::timestampView));
                consumer.commitSync(Map.of(p0, new OffsetAndMetadata(7, "seven"),
                        p1, new OffsetAndMetadata(2)));
                out.put("committed", byPartition(consumer.committed(new HashSet<>(both)),
                        JavaClient::committedView));
            }

            config.put(ConsumerConfig.CLIENT_ID_CONFIG, "offsets-2");
            try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(config)) {
                consumer.assign(both);
                out.put("resumed_position", Map.of("0", consumer.position(p0),
                        "1", consumer.position(p1)));
                out.put("resumed_first", firstPolled(consumer, both));

                consumer.seek(p0, 3);
                consumer.seek(p1, 0);
                out.put("seek_position", Map.of("0", consumer.position(p0),
                        "1", consumer.position(p1)));
                out.put("seek_first", firstPolled(consumer, both));

                consumer.seekToEnd(both);
                out.put("seek_to_end_position", Map.of("0", consumer.position(p0),
                        "1", consumer.position(p1)));
                consumer.seekToBeginning(both);
                out.put("seek_to_beginning_position", Map.of("0", consumer.position(p0),
                        "1", consumer.position(p1)));

                admin.deleteRecords(Map.of(p0, RecordsToDelete.beforeOffset(5))).all().get();
                out.put("beginning_after_delete", byPartition(consumer.beginningOffsets(both),
                        v -> v));
                // Below the log start offset now: out of range, reset to the earliest.
                consumer.seek(p0, 2);
                out.put("below_start_first", firstPolled(consumer, List.of(p0)));

                // Committing again from another member overwrites the group's offsets.
                consumer.commitSync(Map.of(p1, new OffsetAndMetadata(4, "four")));
                out.put("committed_again", byPartition(consumer.committed(new HashSet<>(both)),
                        JavaClient::committedView));
            }
            out.put("admin_committed", byPartition(admin.listConsumerGroupOffsets(group)
                    .partitionsToOffsetAndMetadata().get(), JavaClient::committedView));
        }
        return out;
    }

    // ---- transactions -------------------------------------------------------------------------

    /** How long initTransactions, commitTransaction and the producer's other blocking calls may
     * wait (max.block.ms): finding the transaction coordinator takes moments on loopback. */
    static final int TRANSACTION_BLOCK_MS = 30_000;

    static Properties transactionalConfig(Args args, String clientId) {
        Properties config = producerConfig(args);
        config.put(ProducerConfig.CLIENT_ID_CONFIG, clientId);
        config.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, args.get("transactional.id"));
        config.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        config.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, TRANSACTION_BLOCK_MS);
        return config;
    }

    /** Sends `count` records valued `tag`-NNNN, record i to partition i % `partitions` and keyed
     * by its value (the test's spread() makes the same), and waits for every acknowledgement:
     * [partition, offset] each. */
    static List<List<Object>> sendSpread(KafkaProducer<String, String> producer, String topic,
                                         String tag, int count, int partitions)
            throws Exception {
        List<Future<RecordMetadata>> futures = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            String value = String.format("%s-%04d", tag, i);
            futures.add(producer.send(new ProducerRecord<>(topic, i % partitions, value, value)));
        }
        producer.flush();
        return acknowledgements(futures);
    }

    static List<List<Object>> acknowledgements(List<Future<RecordMetadata>> futures)
            throws Exception {
        List<List<Object>> acks = new ArrayList<>();
        for (Future<RecordMetadata> future : futures) {
            RecordMetadata metadata = future.get(DEADLINE_MS, TimeUnit.MILLISECONDS);
            acks.add(List.of(metadata.partition(), metadata.offset()));
        }
        return acks;
    }

    static List<TopicPartition> partitionsOf(String topic, int partitions) {
        List<TopicPartition> all = new ArrayList<>();
        for (int i = 0; i < partitions; i++) {
            all.add(new TopicPartition(topic, i));
        }
        return all;
    }

    /** Each partition's end offset at an isolation level (the last stable offset at
     * read_committed): partition -> offset. */
    static Map<String, Object> endOffsets(String bootstrap, String topic, int partitions,
                                          String isolation) {
        Properties config = consumerConfig(bootstrap, "java-end-offsets");
        config.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(config)) {
            return byPartition(consumer.endOffsets(partitionsOf(topic, partitions),
                    Duration.ofMillis(DEADLINE_MS)), v -> v);
        }
    }

    /** Runs one call that may fail: {"result": ...} or {"errors": the exception's class and its
     * causes' classes, outermost first, "message": ...}. */
    static Map<String, Object> outcome(Callable<Object> call) {
        Map<String, Object> out = new LinkedHashMap<>();
        try {
            out.put("result", call.call());
        } catch (Exception e) {
            List<String> classes = new ArrayList<>();
            for (Throwable t = e; t != null && classes.size() < 10; t = t.getCause()) {
                classes.add(t.getClass().getSimpleName());
            }
            out.put("errors", classes);
            out.put("message", String.valueOf(unwrap(e).getMessage()));
        }
        return out;
    }

    /** txn bootstrap= topic= transactional.id= partitions= commit= abort=: one transactional
     * producer commits `commit` records (tag c1), aborts `abort` records (tag a; each one
     * acknowledged, so in the log, before the abort) and commits `commit` more (c2). Then the
     * topic is read from the beginning and its end offsets asked at both isolation levels. */
    static Map<String, Object> transactions(Args args) throws Exception {
        String bootstrap = args.get("bootstrap");
        String topic = args.get("topic");
        int partitions = args.integer("partitions");
        int commit = args.integer("commit");
        int abort = args.integer("abort");
        Map<String, Object> acks = new LinkedHashMap<>();
        try (KafkaProducer<String, String> producer =
                     new KafkaProducer<>(transactionalConfig(args, "java-transactional"))) {
            producer.initTransactions();
            producer.beginTransaction();
            acks.put("c1", sendSpread(producer, topic, "c1", commit, partitions));
            producer.commitTransaction();
            producer.beginTransaction();
            acks.put("a", sendSpread(producer, topic, "a", abort, partitions));
            producer.abortTransaction();
            producer.beginTransaction();
            acks.put("c2", sendSpread(producer, topic, "c2", commit, partitions));
            producer.commitTransaction();
        }
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("acks", acks);
        out.put("read_committed", consumeAll(bootstrap, topic, 2 * commit, "read_committed"));
        out.put("read_uncommitted", consumeAll(bootstrap, topic, 2 * commit + abort,
                "read_uncommitted"));
        out.put("end_read_committed", endOffsets(bootstrap, topic, partitions, "read_committed"));
        out.put("end_read_uncommitted", endOffsets(bootstrap, topic, partitions,
                "read_uncommitted"));
        return out;
    }

    /** One consume-transform-produce transaction: polls `consumer` until at least `minimum`
     * records came, sends each to `output` as out:<value> on its own partition number, adds the
     * consumer's positions to the transaction with its group metadata (KIP-447) and commits or
     * aborts. Returns the records consumed: [partition, offset, value] each. */
    static List<List<Object>> transform(KafkaConsumer<String, String> consumer,
                                        KafkaProducer<String, String> producer, String output,
                                        int minimum, boolean commit) throws Exception {
        producer.beginTransaction();
        List<List<Object>> inputs = new ArrayList<>();
        List<Future<RecordMetadata>> futures = new ArrayList<>();
        long deadline = System.currentTimeMillis() + DEADLINE_MS;
        while (inputs.size() < minimum) {
            if (System.currentTimeMillis() > deadline) {
                throw new AssertionError("consumed " + inputs.size() + " of " + minimum);
            }
            for (ConsumerRecord<String, String> record : consumer.poll(POLL)) {
                inputs.add(List.of(record.partition(), record.offset(), record.value()));
                futures.add(producer.send(new ProducerRecord<>(output, record.partition(),
                        record.key(), "out:" + record.value())));
            }
        }
        producer.flush();
        acknowledgements(futures);
        Map<TopicPartition, OffsetAndMetadata> positions = new HashMap<>();
        for (TopicPartition tp : consumer.assignment()) {
            positions.put(tp, new OffsetAndMetadata(consumer.position(tp)));
        }
        producer.sendOffsetsToTransaction(positions, consumer.groupMetadata());
        if (commit) {
            producer.commitTransaction();
        } else {
            producer.abortTransaction();
        }
        return inputs;
    }

    static Map<String, Object> committedOffsets(KafkaConsumer<String, String> consumer,
                                                List<TopicPartition> partitions) {
        return byPartition(consumer.committed(new HashSet<>(partitions),
                Duration.ofMillis(DEADLINE_MS)), v -> ((OffsetAndMetadata) v).offset());
    }

    /** txn-ctp bootstrap= input= output= group= transactional.id= partitions= count= extra=:
     * consume-transform-produce. `count` records in-NNNN go to `input` (not transactional); a
     * read_committed member of `group` consumes them and a transactional producer sends them on,
     * transformed, to `output`, one transaction per poll that returned records, with the member's
     * positions. Then `extra` records more-NNNN go to `input`: their round is aborted, the member
     * seeks back to the group's committed offsets and does the round again, committed. Reports
     * what each round consumed, the group's committed offsets after each stage, the input's end
     * offsets and `output` read at both isolation levels. */
    static Map<String, Object> consumeTransformProduce(Args args) throws Exception {
        String bootstrap = args.get("bootstrap");
        String input = args.get("input");
        String output = args.get("output");
        int partitions = args.integer("partitions");
        int count = args.integer("count");
        int extra = args.integer("extra");
        List<TopicPartition> inputPartitions = partitionsOf(input, partitions);
        Map<String, Object> out = new LinkedHashMap<>();
        try (KafkaProducer<String, String> plain = new KafkaProducer<>(producerConfig(args))) {
            sendSpread(plain, input, "in", count, partitions);
        }
        Properties config = consumerConfig(bootstrap, "java-ctp-member");
        config.put(ConsumerConfig.GROUP_ID_CONFIG, args.get("group"));
        config.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(config);
             KafkaProducer<String, String> producer =
                     new KafkaProducer<>(transactionalConfig(args, "java-ctp"))) {
            producer.initTransactions();
            consumer.subscribe(List.of(input));
            List<List<Object>> consumed = new ArrayList<>();
            int transactions = 0;
            while (consumed.size() < count) {
                consumed.addAll(transform(consumer, producer, output, 1, true));
                transactions++;
            }
            out.put("consumed", consumed);
            out.put("transactions", transactions);
            out.put("committed", committedOffsets(consumer, inputPartitions));

            try (KafkaProducer<String, String> plain =
                         new KafkaProducer<>(producerConfig(args))) {
                sendSpread(plain, input, "more", extra, partitions);
            }
            out.put("aborted", transform(consumer, producer, output, extra, false));
            Map<TopicPartition, OffsetAndMetadata> committed =
                    consumer.committed(new HashSet<>(inputPartitions));
            out.put("committed_after_abort", byPartition(committed,
                    v -> ((OffsetAndMetadata) v).offset()));
            for (TopicPartition tp : inputPartitions) {
                if (committed.get(tp) == null) {
                    throw new AssertionError("no committed offset for " + tp);
                }
                consumer.seek(tp, committed.get(tp).offset());
            }
            out.put("again", transform(consumer, producer, output, extra, true));
            out.put("committed_final", committedOffsets(consumer, inputPartitions));
        }
        out.put("input_end", endOffsets(bootstrap, input, partitions, "read_uncommitted"));
        out.put("read_committed", consumeAll(bootstrap, output, count + extra,
                "read_committed"));
        out.put("read_uncommitted", consumeAll(bootstrap, output, count + 2 * extra,
                "read_uncommitted"));
        return out;
    }

    /** txn-fence bootstrap= topic= transactional.id= partitions= count=: a producer (the zombie)
     * begins a transaction and sends `count` records zombie-NNNN, all acknowledged; a second
     * producer with the same transactional.id (the survivor) initialises, which fences the
     * zombie. The zombie then sends one more record and tries to commit, and when that fails to
     * abort: each outcome is reported, errors as exception classes. The survivor commits `count`
     * records survivor-NNNN; the topic is read at both isolation levels. */
    static Map<String, Object> fence(Args args) throws Exception {
        String bootstrap = args.get("bootstrap");
        String topic = args.get("topic");
        int partitions = args.integer("partitions");
        int count = args.integer("count");
        Map<String, Object> out = new LinkedHashMap<>();
        KafkaProducer<String, String> zombie =
                new KafkaProducer<>(transactionalConfig(args, "java-zombie"));
        try (KafkaProducer<String, String> survivor =
                     new KafkaProducer<>(transactionalConfig(args, "java-survivor"))) {
            zombie.initTransactions();
            zombie.beginTransaction();
            out.put("zombie_acks", sendSpread(zombie, topic, "zombie", count, partitions));
            survivor.initTransactions();

            out.put("late_send", outcome(() -> {
                RecordMetadata metadata = zombie.send(new ProducerRecord<>(topic, 0,
                        "zombie-late", "zombie-late")).get(DEADLINE_MS, TimeUnit.MILLISECONDS);
                return List.of(metadata.partition(), metadata.offset());
            }));
            Map<String, Object> commit = outcome(() -> {
                zombie.commitTransaction();
                return "committed";
            });
            out.put("zombie_commit", commit);
            if (commit.containsKey("errors")) {
                out.put("zombie_abort", outcome(() -> {
                    zombie.abortTransaction();
                    return "aborted";
                }));
            }

            survivor.beginTransaction();
            out.put("survivor_acks", sendSpread(survivor, topic, "survivor", count, partitions));
            survivor.commitTransaction();
        } finally {
            zombie.close(Duration.ofSeconds(5));
        }
        out.put("read_committed", consumeAll(bootstrap, topic, count, "read_committed"));
        out.put("read_uncommitted", consumeAll(bootstrap, topic, 2 * count,
                "read_uncommitted"));
        return out;
    }

    /** txn-timeout bootstrap= topic= transactional.id= partitions= count= timeout_ms= wait_ms=:
     * a transaction left open past its transaction.timeout.ms (`timeout_ms`) by `wait_ms`, which
     * the coordinator aborts: what a late send, the commit and then the abort get, and whether
     * the same producer then commits a new transaction. */
    static Map<String, Object> timedOut(Args args) throws Exception {
        String bootstrap = args.get("bootstrap");
        String topic = args.get("topic");
        int partitions = args.integer("partitions");
        int count = args.integer("count");
        Properties config = transactionalConfig(args, "java-timed-out");
        config.put(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, args.get("timeout_ms"));
        Map<String, Object> out = new LinkedHashMap<>();
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(config)) {
            producer.initTransactions();
            producer.beginTransaction();
            out.put("timed_out_acks", sendSpread(producer, topic, "timed-out", count, partitions));
            Thread.sleep(args.integer("wait_ms"));
            out.put("late_send", outcome(() -> {
                RecordMetadata metadata = producer.send(new ProducerRecord<>(topic, 0,
                        "late", "late")).get(DEADLINE_MS, TimeUnit.MILLISECONDS);
                return List.of(metadata.partition(), metadata.offset());
            }));
            out.put("commit", outcome(() -> {
                producer.commitTransaction();
                return "committed";
            }));
            out.put("abort", outcome(() -> {
                producer.abortTransaction();
                return "aborted";
            }));
            out.put("next", outcome(() -> {
                producer.beginTransaction();
                List<List<Object>> acks = sendSpread(producer, topic, "next", count, partitions);
                producer.commitTransaction();
                return acks;
            }));
        }
        boolean committed = ((Map<?, ?>) out.get("next")).containsKey("result");
        out.put("read_committed", consumeAll(bootstrap, topic, committed ? count : 0,
                "read_committed"));
        return out;
    }

    // ---- helpers ------------------------------------------------------------------------------

    static <T> T get(org.apache.kafka.common.KafkaFuture<T> future) {
        try {
            return future.get();
        } catch (Exception e) {
            throw new CompletionException(e);
        }
    }

    static Throwable unwrap(Throwable error) {
        while ((error instanceof ExecutionException || error instanceof CompletionException)
                && error.getCause() != null) {
            error = error.getCause();
        }
        return error;
    }

    static String describe(Throwable error) {
        Throwable cause = unwrap(error);
        return cause.getClass().getName() + ": " + cause.getMessage();
    }

    /** Just enough JSON for the output: maps, lists, strings, numbers, booleans and null. */
    static final class Json {
        static String write(Object value) {
            StringBuilder out = new StringBuilder();
            write(out, value);
            return out.toString();
        }

        static void write(StringBuilder out, Object value) {
            if (value == null) {
                out.append("null");
            } else if (value instanceof Number || value instanceof Boolean) {
                out.append(value);
            } else if (value instanceof Map) {
                out.append('{');
                boolean first = true;
                for (Map.Entry<?, ?> entry : ((Map<?, ?>) value).entrySet()) {
                    if (!first) {
                        out.append(',');
                    }
                    first = false;
                    string(out, String.valueOf(entry.getKey()));
                    out.append(':');
                    write(out, entry.getValue());
                }
                out.append('}');
            } else if (value instanceof Collection) {
                out.append('[');
                boolean first = true;
                for (Object item : (Collection<?>) value) {
                    if (!first) {
                        out.append(',');
                    }
                    first = false;
                    write(out, item);
                }
                out.append(']');
            } else {
                string(out, value.toString());
            }
        }

        static void string(StringBuilder out, String text) {
            out.append('"');
            for (int i = 0; i < text.length(); i++) {
                char c = text.charAt(i);
                switch (c) {
                    case '"': out.append("\\\""); break;
                    case '\\': out.append("\\\\"); break;
                    case '\n': out.append("\\n"); break;
                    case '\r': out.append("\\r"); break;
                    case '\t': out.append("\\t"); break;
                    default:
                        if (c < 0x20) {
                            out.append(String.format("\\u%04x", (int) c));
                        } else {
                            out.append(c);
                        }
                }
            }
            out.append('"');
        }
    }
}
