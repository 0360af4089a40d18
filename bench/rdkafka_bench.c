/*
 * rdkafka_bench: the one third-party client that bench/broker.sh drives every broker with, so that
 * Flink and the peer see exactly the same load from exactly the same code (librdkafka, as
 * packaged by the distribution). Modes:
 *
 *   version  prints the librdkafka version it runs with.
 *   create   CreateTopics (admin API) with --partitions, replication factor 1.
 *   produce  --count records of --size bytes (or as many as fit in --duration seconds), round-robin
 *            over the partitions, as fast as the client can (or at --rate records/s); reports
 *            records/s, MiB/s and the delivery latency (produce call to delivery report).
 *   consume  --count records from offset 0 of every partition; reports records/s and MiB/s from
 *            the first record received to the last.
 *   e2e      one producer thread at a fixed --rate (linger.ms=0) that stamps CLOCK_MONOTONIC in
 *            each payload, one consumer thread (same process, same clock) that takes
 *            receive - send per record; reports p50 ... p99.99 and max in microseconds and writes
 *            the percentile curve as CSV (--csv) for plotting.
 *   txn      like produce, but as a transactional producer (enable.idempotence, acks=all): one
 *            transaction per --txn-records records (1000), committed; reports records/s, MiB/s,
 *            transactions/s and the commit latency (commit_transaction call to its return,
 *            which includes flushing the transaction's last records). `produce --idempotent` is
 *            the same workload without transactions.
 *   latency  one producer thread at a fixed --rate for --warmup + --duration seconds (open loop),
 *            one thread blocked in rd_kafka_poll that takes each delivery report as it arrives;
 *            reports the delivery latency (produce call to delivery report) of the records sent
 *            after the warm-up: p50 ... p99.99 and max in microseconds, and the rate held.
 *
 * The partitioned legacy consumer (consume_start_queue) is used on purpose: it needs no group
 * coordinator, so both brokers are measured on Produce, Metadata and Fetch alone.
 *
 * Every mode prints one machine-readable line, `rdkafka_bench mode=... key=value ...`, to stdout;
 * progress and errors go to stderr. Exit status 1 on any delivery or consume error.
 *
 * Needs librdkafka >= 2.2.0: older ones skip tagged fields wrongly (librdkafka #4278) and cannot
 * read tansu's ApiVersions response. bench/broker.sh builds a pinned one; by hand:
 *   gcc -O2 -Wall -I<prefix>/include -o rdkafka_bench bench/rdkafka_bench.c \
 *       -L<prefix>/lib -Wl,-rpath,<prefix>/lib -lrdkafka -lpthread -lm
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

/* Bounds, so that a broken broker fails a run instead of hanging it. */
#define METADATA_TIMEOUT_MS 30000
#define CREATE_TIMEOUT_MS 30000
#define FLUSH_TIMEOUT_MS 120000
#define CONSUME_IDLE_TIMEOUT_MS 30000
#define CONSUME_BATCH_RECORDS_MAX 1024
#define PARTITIONS_MAX 64
/* The e2e payload header: send time in ns, then the sequence number (host byte order). */
#define E2E_HEADER_BYTES 16

/* --config settings a run may give. */
#define CONFIGS_MAX 16

struct options {
    const char *mode;
    const char *brokers;
    const char *topic;
    const char *csv_path;
    const char *acks;
    int partitions;
    long count;
    int size;
    double rate;
    double duration_s;
    double warmup_s;
    int linger_ms;
    long batch_size;
    int fetch_wait_ms;
    int in_flight_max;
    int idempotent;
    long txn_records;
    /* --config key=value settings for every client (security.protocol, ssl.*, sasl.*). */
    const char *configs[CONFIGS_MAX];
    int config_count;
};

struct samples {
    uint64_t *ns;
    size_t len;
    size_t cap;
};

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_until_ns(uint64_t deadline) {
    struct timespec ts = {.tv_sec = deadline / 1000000000u, .tv_nsec = deadline % 1000000000u};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

/* Paced sends sleep only for a record due more than this far ahead; the records due sooner go at
 * once (a little early, timed from when they really go). A sleep per record at hundreds of
 * thousands of records per second would spend the client's CPU in timer calls (seen: 65% of it
 * in clock_nanosleep at 295,000 records/s on a VM) and starve librdkafka's own threads. */
#define PACE_QUANTUM_NS 50000u

/* Returns when the record due at `due` may go: at once when it is late or due within
 * PACE_QUANTUM_NS, after a sleep otherwise. Returns the time it goes. */
static uint64_t pace(uint64_t due) {
    uint64_t now = now_ns();
    if (due > now + PACE_QUANTUM_NS) {
        sleep_until_ns(due);
        now = now_ns();
    }
    return now;
}

static void die(const char *what, const char *detail) {
    fprintf(stderr, "rdkafka_bench: %s: %s\n", what, detail);
    exit(1);
}

static void samples_push(struct samples *samples, uint64_t value) {
    if (samples->len == samples->cap) {
        samples->cap = samples->cap ? samples->cap * 2 : 1 << 16;
        samples->ns = realloc(samples->ns, samples->cap * sizeof(uint64_t));
        if (!samples->ns) die("out of memory", "latency samples");
    }
    samples->ns[samples->len++] = value;
}

static int compare_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile in microseconds of sorted samples; p in [0, 100]. */
static double percentile_us(const struct samples *sorted, double p) {
    if (sorted->len == 0) return 0.0;
    size_t rank = (size_t)ceil(p / 100.0 * (double)sorted->len);
    if (rank < 1) rank = 1;
    if (rank > sorted->len) rank = sorted->len;
    return (double)sorted->ns[rank - 1] / 1000.0;
}

static void print_percentiles(struct samples *samples) {
    qsort(samples->ns, samples->len, sizeof(uint64_t), compare_u64);
    printf(" samples=%zu p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f p9999_us=%.1f max_us=%.1f",
           samples->len, percentile_us(samples, 50), percentile_us(samples, 90),
           percentile_us(samples, 99), percentile_us(samples, 99.9), percentile_us(samples, 99.99),
           percentile_us(samples, 100));
}

/* The percentile curve, HdrHistogram style: 20 points per decade of 1/(1-p), then the max. */
static void write_csv(const char *path, struct samples *sorted) {
    FILE *file = fopen(path, "w");
    if (!file) die("cannot write", path);
    fprintf(file, "percentile,latency_us\n");
    for (int step = 0;; step++) {
        double tail = pow(10.0, -step / 20.0);
        if (tail * (double)sorted->len < 1.0) break;
        double p = 100.0 * (1.0 - tail);
        fprintf(file, "%.6f,%.1f\n", p, percentile_us(sorted, p));
    }
    fprintf(file, "100,%.1f\n", percentile_us(sorted, 100));
    fclose(file);
}

static void set(rd_kafka_conf_t *conf, const char *key, const char *value) {
    char error[512];
    if (rd_kafka_conf_set(conf, key, value, error, sizeof error) != RD_KAFKA_CONF_OK)
        die(key, error);
}

static void set_int(rd_kafka_conf_t *conf, const char *key, long value) {
    char text[32];
    snprintf(text, sizeof text, "%ld", value);
    set(conf, key, text);
}

static rd_kafka_conf_t *base_conf(const struct options *options) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    set(conf, "bootstrap.servers", options->brokers);
    set(conf, "client.id", "rdkafka_bench");
    set(conf, "log_level", "4");
    for (int i = 0; i < options->config_count; i++) {
        char key[256];
        const char *equals = strchr(options->configs[i], '=');
        size_t length = equals ? (size_t)(equals - options->configs[i]) : 0;
        if (!equals || length == 0 || length >= sizeof key) die("--config", options->configs[i]);
        memcpy(key, options->configs[i], length);
        key[length] = '\0';
        set(conf, key, equals + 1);
    }
    return conf;
}

static rd_kafka_t *new_client(rd_kafka_type_t type, rd_kafka_conf_t *conf) {
    char error[512];
    rd_kafka_t *client = rd_kafka_new(type, conf, error, sizeof error);
    if (!client) die("rd_kafka_new", error);
    return client;
}

/* Waits until the broker's metadata lists `topic` with `partitions` partitions, each led. */
static void wait_for_topic(rd_kafka_t *client, const struct options *options) {
    uint64_t deadline = now_ns() + (uint64_t)METADATA_TIMEOUT_MS * 1000000u;
    rd_kafka_topic_t *topic = rd_kafka_topic_new(client, options->topic, NULL);
    for (;;) {
        const struct rd_kafka_metadata *metadata = NULL;
        int ready = 0;
        if (rd_kafka_metadata(client, 0, topic, &metadata, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
            for (int t = 0; t < metadata->topic_cnt; t++) {
                const rd_kafka_metadata_topic_t *entry = &metadata->topics[t];
                if (entry->err || entry->partition_cnt != options->partitions) continue;
                ready = 1;
                for (int p = 0; p < entry->partition_cnt; p++)
                    if (entry->partitions[p].err || entry->partitions[p].leader < 0) ready = 0;
            }
            rd_kafka_metadata_destroy(metadata);
        }
        if (ready) break;
        if (now_ns() > deadline) die("topic not ready in metadata", options->topic);
        sleep_until_ns(now_ns() + 100000000u);
    }
    rd_kafka_topic_destroy(topic);
}

static int run_create(const struct options *options) {
    char error[512];
    rd_kafka_t *client = new_client(RD_KAFKA_PRODUCER, base_conf(options));
    rd_kafka_NewTopic_t *new_topic =
        rd_kafka_NewTopic_new(options->topic, options->partitions, 1, error, sizeof error);
    if (!new_topic) die("NewTopic", error);
    rd_kafka_queue_t *queue = rd_kafka_queue_new(client);
    rd_kafka_CreateTopics(client, &new_topic, 1, NULL, queue);
    rd_kafka_event_t *event = rd_kafka_queue_poll(queue, CREATE_TIMEOUT_MS);
    if (!event) die("CreateTopics", "no result in time");
    if (rd_kafka_event_error(event)) die("CreateTopics", rd_kafka_event_error_string(event));
    size_t count = 0;
    const rd_kafka_topic_result_t **results =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event), &count);
    for (size_t i = 0; i < count; i++) {
        rd_kafka_resp_err_t err = rd_kafka_topic_result_error(results[i]);
        if (err && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
            die("CreateTopics", rd_kafka_err2str(err));
    }
    rd_kafka_event_destroy(event);
    wait_for_topic(client, options);
    printf("rdkafka_bench mode=create topic=%s partitions=%d\n", options->topic, options->partitions);
    rd_kafka_queue_destroy(queue);
    rd_kafka_NewTopic_destroy(new_topic);
    rd_kafka_destroy(client);
    return 0;
}

/* State the producer's delivery-report callback updates (on the thread that polls). */
struct delivery {
    struct samples latency;
    long delivered;
    long failed;
    uint64_t last_ns;
    uint64_t sample_from_ns; /* records sent before this are delivered but not sampled */
};

static void on_delivery(rd_kafka_t *client, const rd_kafka_message_t *message, void *opaque) {
    (void)client;
    struct delivery *delivery = opaque;
    uint64_t now = now_ns();
    if (message->err) {
        if (delivery->failed++ == 0)
            fprintf(stderr, "rdkafka_bench: delivery failed: %s\n", rd_kafka_err2str(message->err));
        return;
    }
    delivery->delivered++;
    delivery->last_ns = now;
    uint64_t sent = (uint64_t)(uintptr_t)message->_private;
    if (sent >= delivery->sample_from_ns) samples_push(&delivery->latency, now - sent);
}

static rd_kafka_t *new_producer(const struct options *options, struct delivery *delivery) {
    rd_kafka_conf_t *conf = base_conf(options);
    set(conf, "acks", options->acks);
    set_int(conf, "linger.ms", options->linger_ms);
    if (options->batch_size > 0) set_int(conf, "batch.size", options->batch_size);
    set_int(conf, "max.in.flight.requests.per.connection", options->in_flight_max);
    set(conf, "enable.idempotence", options->idempotent ? "true" : "false");
    set(conf, "compression.type", "none");
    /* librdkafka's default, said out loud: it bounds how long a timed run drains after its end. */
    set(conf, "queue.buffering.max.messages", "100000");
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, delivery);
    return new_client(RD_KAFKA_PRODUCER, conf);
}

/* Queues one record. While the local queue is full it polls for delivery reports, or, when
 * another thread takes them (poll = 0), sleeps 100 us. */
static void produce_one_polling(rd_kafka_t *client, const struct options *options, int partition,
                                void *payload, uint64_t sent_ns, int poll) {
    for (;;) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
            client, RD_KAFKA_V_TOPIC(options->topic), RD_KAFKA_V_PARTITION(partition),
            RD_KAFKA_V_VALUE(payload, (size_t)options->size),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_OPAQUE((void *)(uintptr_t)sent_ns), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return;
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) die("produce", rd_kafka_err2str(err));
        if (poll)
            rd_kafka_poll(client, 1);
        else
            sleep_until_ns(now_ns() + 100000u);
    }
}

static void produce_one(rd_kafka_t *client, const struct options *options, int partition,
                        void *payload, uint64_t sent_ns) {
    produce_one_polling(client, options, partition, payload, sent_ns, 1);
}

static unsigned char *new_payload(int size) {
    unsigned char *payload = malloc((size_t)size);
    if (!payload) die("out of memory", "payload");
    uint32_t state = 2463534242u; /* xorshift: incompressible, same bytes every run */
    for (int i = 0; i < size; i++) {
        state ^= state << 13, state ^= state >> 17, state ^= state << 5;
        payload[i] = (unsigned char)state;
    }
    return payload;
}

static int run_produce(const struct options *options) {
    struct delivery delivery = {0};
    rd_kafka_t *client = new_producer(options, &delivery);
    wait_for_topic(client, options);
    unsigned char *payload = new_payload(options->size);
    uint64_t start = now_ns();
    uint64_t stop = options->duration_s > 0 ? start + (uint64_t)(options->duration_s * 1e9) : UINT64_MAX;
    long sent = 0;
    while (sent < options->count) {
        uint64_t now = options->rate > 0
                           ? pace(start + (uint64_t)((double)sent * 1e9 / options->rate))
                           : now_ns();
        if (now >= stop) break;
        produce_one(client, options, (int)(sent % options->partitions), payload, now);
        sent++;
        rd_kafka_poll(client, 0);
    }
    if (rd_kafka_flush(client, FLUSH_TIMEOUT_MS) != RD_KAFKA_RESP_ERR_NO_ERROR)
        die("flush", "records still in flight after the timeout");
    double seconds = (double)(delivery.last_ns - start) / 1e9;
    double mib = (double)delivery.delivered * options->size / 1048576.0;
    printf("rdkafka_bench mode=produce topic=%s acks=%s size=%d linger_ms=%d batch_size=%ld "
           "in_flight=%d rate=%.0f records=%ld errors=%ld seconds=%.3f records_per_s=%.0f "
           "mib_per_s=%.1f",
           options->topic, options->acks, options->size, options->linger_ms, options->batch_size,
           options->in_flight_max, options->rate, delivery.delivered,
           delivery.failed, seconds, delivery.delivered / seconds, mib / seconds);
    print_percentiles(&delivery.latency);
    printf("\n");
    rd_kafka_destroy(client);
    free(payload);
    free(delivery.latency.ns);
    return delivery.failed ? 1 : 0;
}

static void check_txn(rd_kafka_error_t *error, const char *what) {
    if (!error) return;
    fprintf(stderr, "rdkafka_bench: %s failed: %s\n", what, rd_kafka_error_string(error));
    rd_kafka_error_destroy(error);
    exit(1);
}

static int run_txn(const struct options *options) {
    struct delivery delivery = {0};
    struct samples commits = {0};
    rd_kafka_conf_t *conf = base_conf(options);
    set(conf, "transactional.id", "rdkafka-bench");
    set(conf, "acks", "all");
    set_int(conf, "linger.ms", options->linger_ms);
    if (options->batch_size > 0) set_int(conf, "batch.size", options->batch_size);
    set_int(conf, "max.in.flight.requests.per.connection", options->in_flight_max);
    set(conf, "compression.type", "none");
    set(conf, "queue.buffering.max.messages", "100000");
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, &delivery);
    rd_kafka_t *client = new_client(RD_KAFKA_PRODUCER, conf);
    wait_for_topic(client, options);
    check_txn(rd_kafka_init_transactions(client, 30000), "init_transactions");
    unsigned char *payload = new_payload(options->size);
    uint64_t start = now_ns();
    uint64_t stop = options->duration_s > 0 ? start + (uint64_t)(options->duration_s * 1e9) : UINT64_MAX;
    long sent = 0, transactions = 0;
    while (sent < options->count && now_ns() < stop) {
        check_txn(rd_kafka_begin_transaction(client), "begin_transaction");
        for (long i = 0; i < options->txn_records && sent < options->count; i++, sent++) {
            produce_one(client, options, (int)(sent % options->partitions), payload, now_ns());
            rd_kafka_poll(client, 0);
        }
        uint64_t committing = now_ns();
        check_txn(rd_kafka_commit_transaction(client, 60000), "commit_transaction");
        samples_push(&commits, now_ns() - committing);
        transactions++;
    }
    double seconds = (double)(now_ns() - start) / 1e9;
    double mib = (double)delivery.delivered * options->size / 1048576.0;
    printf("rdkafka_bench mode=txn topic=%s size=%d linger_ms=%d txn_records=%ld records=%ld "
           "errors=%ld transactions=%ld seconds=%.3f records_per_s=%.0f mib_per_s=%.1f "
           "txn_per_s=%.1f",
           options->topic, options->size, options->linger_ms, options->txn_records,
           delivery.delivered, delivery.failed, transactions, seconds,
           delivery.delivered / seconds, mib / seconds, transactions / seconds);
    print_percentiles(&commits);
    printf("\n");
    rd_kafka_destroy(client);
    free(payload);
    free(delivery.latency.ns);
    free(commits.ns);
    return delivery.failed ? 1 : 0;
}

/* A legacy (group-less) consumer of every partition from offset 0, on one queue. */
struct consumer {
    rd_kafka_t *client;
    rd_kafka_topic_t *topic;
    rd_kafka_queue_t *queue;
    int partitions;
};

static void consumer_open(struct consumer *consumer, const struct options *options) {
    rd_kafka_conf_t *conf = base_conf(options);
    /* 10 ms by default, not librdkafka's 500: tansu 0.6.0 answers a fetch only when the whole
     * wait has passed, data or not, so this setting is its latency floor; Flink answers as soon as
     * data arrives. A short wait favours the peer. */
    set_int(conf, "fetch.wait.max.ms", options->fetch_wait_ms);
    set(conf, "enable.partition.eof", "false");
    consumer->client = new_client(RD_KAFKA_CONSUMER, conf);
    wait_for_topic(consumer->client, options);
    consumer->topic = rd_kafka_topic_new(consumer->client, options->topic, NULL);
    consumer->queue = rd_kafka_queue_new(consumer->client);
    consumer->partitions = options->partitions;
    for (int p = 0; p < options->partitions; p++)
        if (rd_kafka_consume_start_queue(consumer->topic, p, 0, consumer->queue) == -1)
            die("consume_start", rd_kafka_err2str(rd_kafka_last_error()));
}

static void consumer_close(struct consumer *consumer) {
    for (int p = 0; p < consumer->partitions; p++) rd_kafka_consume_stop(consumer->topic, p);
    rd_kafka_queue_destroy(consumer->queue);
    rd_kafka_topic_destroy(consumer->topic);
    rd_kafka_destroy(consumer->client);
}

/* Fills `batch` with at most `wanted` records; returns how many it holds, 0 after
 * CONSUME_IDLE_TIMEOUT_MS of nothing. consume_batch_queue waits until it has all `wanted` or its
 * timeout passes, so `wanted` is never more than the records still expected: the last batch of a
 * run must not wait out the timeout. The e2e consumer asks for 1, so no record waits for another. */
static ssize_t consume_batch(struct consumer *consumer, rd_kafka_message_t **batch, long wanted) {
    uint64_t deadline = now_ns() + (uint64_t)CONSUME_IDLE_TIMEOUT_MS * 1000000u;
    if (wanted > CONSUME_BATCH_RECORDS_MAX) wanted = CONSUME_BATCH_RECORDS_MAX;
    for (;;) {
        ssize_t got = rd_kafka_consume_batch_queue(consumer->queue, 100, batch, (size_t)wanted);
        if (got < 0) die("consume", rd_kafka_err2str(rd_kafka_last_error()));
        if (got > 0 || now_ns() > deadline) return got;
    }
}

static int run_consume(const struct options *options) {
    struct consumer consumer;
    consumer_open(&consumer, options);
    static rd_kafka_message_t *batch[CONSUME_BATCH_RECORDS_MAX];
    long received = 0, errors = 0;
    uint64_t bytes = 0, first = 0, last = 0;
    while (received < options->count) {
        ssize_t got = consume_batch(&consumer, batch, options->count - received);
        if (got == 0) break;
        last = now_ns();
        if (!first) first = last;
        for (ssize_t i = 0; i < got; i++) {
            if (batch[i]->err) {
                if (errors++ == 0) fprintf(stderr, "rdkafka_bench: consume error: %s\n",
                                           rd_kafka_message_errstr(batch[i]));
            } else {
                received++, bytes += batch[i]->len;
            }
            rd_kafka_message_destroy(batch[i]);
        }
    }
    double seconds = (double)(last - first) / 1e9;
    printf("rdkafka_bench mode=consume topic=%s records=%ld errors=%ld seconds=%.3f "
           "records_per_s=%.0f mib_per_s=%.1f\n",
           options->topic, received, errors, seconds, received / seconds,
           (double)bytes / 1048576.0 / seconds);
    consumer_close(&consumer);
    return (errors || received < options->count) ? 1 : 0;
}

struct e2e_consumer {
    struct consumer consumer;
    long expected;
    long warmup;
    long received;
    long errors;
    struct samples latency;
};

static void *e2e_consume(void *argument) {
    struct e2e_consumer *state = argument;
    static rd_kafka_message_t *batch[CONSUME_BATCH_RECORDS_MAX];
    while (state->received < state->expected) {
        ssize_t got = consume_batch(&state->consumer, batch, 1);
        if (got == 0) break;
        uint64_t now = now_ns();
        for (ssize_t i = 0; i < got; i++) {
            rd_kafka_message_t *message = batch[i];
            if (message->err || message->len < E2E_HEADER_BYTES) {
                state->errors++;
            } else {
                uint64_t header[2];
                memcpy(header, message->payload, sizeof header);
                state->received++;
                if ((long)header[1] >= state->warmup) samples_push(&state->latency, now - header[0]);
            }
            rd_kafka_message_destroy(message);
        }
    }
    return NULL;
}

static int run_e2e(const struct options *options) {
    if (options->rate <= 0) die("e2e", "needs --rate");
    if (options->size < E2E_HEADER_BYTES) die("e2e", "--size must be at least 16");
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0); /* pace sends to the microsecond, not to 50 us */
    struct e2e_consumer state = {0};
    state.warmup = (long)(options->warmup_s * options->rate);
    state.expected = options->count + state.warmup;
    consumer_open(&state.consumer, options);
    pthread_t thread;
    pthread_create(&thread, NULL, e2e_consume, &state);

    struct delivery delivery = {0};
    rd_kafka_t *producer = new_producer(options, &delivery);
    wait_for_topic(producer, options);
    unsigned char *payload = new_payload(options->size);
    uint64_t start = now_ns();
    for (long sequence = 0; sequence < state.expected; sequence++) {
        /* Open loop: a record late for its slot goes at once, without a sleep call. */
        uint64_t now = pace(start + (uint64_t)((double)sequence * 1e9 / options->rate));
        uint64_t header[2] = {now, (uint64_t)sequence};
        memcpy(payload, header, sizeof header);
        produce_one(producer, options, (int)(sequence % options->partitions), payload, now);
        if (sequence % 16 == 0) rd_kafka_poll(producer, 0);
    }
    double send_seconds = (double)(now_ns() - start) / 1e9;
    rd_kafka_flush(producer, FLUSH_TIMEOUT_MS);
    pthread_join(thread, NULL);

    printf("rdkafka_bench mode=e2e topic=%s acks=%s size=%d rate=%.0f sent_rate=%.0f records=%ld "
           "received=%ld errors=%ld",
           options->topic, options->acks, options->size, options->rate,
           (double)state.expected / send_seconds, options->count, state.received - state.warmup,
           state.errors + delivery.failed);
    print_percentiles(&state.latency);
    /* The producer's own view: produce call to delivery report, warm-up included. */
    qsort(delivery.latency.ns, delivery.latency.len, sizeof(uint64_t), compare_u64);
    printf(" delivery_p50_us=%.1f delivery_p99_us=%.1f delivery_max_us=%.1f\n",
           percentile_us(&delivery.latency, 50), percentile_us(&delivery.latency, 99),
           percentile_us(&delivery.latency, 100));
    if (options->csv_path) write_csv(options->csv_path, &state.latency);
    rd_kafka_destroy(producer);
    consumer_close(&state.consumer);
    free(payload);
    free(state.latency.ns);
    free(delivery.latency.ns);
    return (state.errors || delivery.failed || state.received < state.expected) ? 1 : 0;
}

/* The delivery-report thread of the latency mode: rd_kafka_poll wakes as soon as a report is
 * queued, so no report waits for the sending thread's next poll (which at low rates would add up
 * to a whole send interval to every latency). */
struct poller {
    rd_kafka_t *client;
    volatile int stop;
};

static void *poll_reports(void *argument) {
    struct poller *poller = argument;
    while (!poller->stop) rd_kafka_poll(poller->client, 100);
    return NULL;
}

static int run_latency(const struct options *options) {
    if (options->rate <= 0 || options->duration_s <= 0) die("latency", "needs --rate and --duration");
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0); /* pace sends to the microsecond, not to 50 us */
    struct delivery delivery = {0};
    rd_kafka_t *client = new_producer(options, &delivery);
    wait_for_topic(client, options);
    unsigned char *payload = new_payload(options->size);
    struct poller poller = {.client = client};
    pthread_t thread;
    pthread_create(&thread, NULL, poll_reports, &poller);
    uint64_t start = now_ns();
    delivery.sample_from_ns = start + (uint64_t)(options->warmup_s * 1e9);
    long total = (long)((options->warmup_s + options->duration_s) * options->rate);
    for (long sequence = 0; sequence < total; sequence++) {
        /* Open loop: a record late for its slot goes at once, without a sleep call. */
        uint64_t now = pace(start + (uint64_t)((double)sequence * 1e9 / options->rate));
        produce_one_polling(client, options, (int)(sequence % options->partitions), payload, now, 0);
    }
    double send_seconds = (double)(now_ns() - start) / 1e9;
    /* rd_kafka_flush would serve callbacks on this thread too: wait for the poller instead. */
    uint64_t deadline = now_ns() + (uint64_t)FLUSH_TIMEOUT_MS * 1000000u;
    while (rd_kafka_outq_len(client) > 0 && now_ns() < deadline) sleep_until_ns(now_ns() + 1000000u);
    poller.stop = 1;
    pthread_join(thread, NULL);
    rd_kafka_poll(client, 0);
    long lost = total - delivery.delivered - delivery.failed;
    printf("rdkafka_bench mode=latency topic=%s acks=%s size=%d linger_ms=%d batch_size=%ld "
           "in_flight=%d rate=%.0f sent_rate=%.0f records=%ld errors=%ld",
           options->topic, options->acks, options->size, options->linger_ms, options->batch_size,
           options->in_flight_max, options->rate, (double)total / send_seconds, total,
           delivery.failed + lost);
    print_percentiles(&delivery.latency);
    printf("\n");
    if (options->csv_path) write_csv(options->csv_path, &delivery.latency);
    rd_kafka_destroy(client);
    free(payload);
    free(delivery.latency.ns);
    return (delivery.failed || lost) ? 1 : 0;
}

static void usage(void) {
    fprintf(stderr,
            "usage: rdkafka_bench version | create|produce|consume|e2e --brokers HOST:PORT --topic T\n"
            "  [--partitions N (2)] [--count N] [--size BYTES (1024)] [--acks 1|all (all)]\n"
            "  | latency ... --rate R --duration S\n"
            "  [--rate RECORDS_PER_S] [--duration S] [--warmup S (e2e, latency: 1)] [--linger-ms MS]\n"
            "  [--batch-size BYTES (librdkafka's batch.size)]\n"
            "  [--in-flight N (requests per connection; e2e and latency 5)]\n"
            "  [--fetch-wait-ms MS (10)] [--csv PATH (e2e percentile curve)]\n"
            "  [--idempotent (produce)] | txn ... [--txn-records N (1000)]\n"
            "  [--config KEY=VALUE (librdkafka setting for every client; repeatable)]\n");
    exit(2);
}

int main(int argc, char **argv) {
    static const struct option long_options[] = {
        {"brokers", required_argument, 0, 'b'}, {"topic", required_argument, 0, 't'},
        {"partitions", required_argument, 0, 'p'}, {"count", required_argument, 0, 'n'},
        {"size", required_argument, 0, 's'}, {"acks", required_argument, 0, 'a'},
        {"rate", required_argument, 0, 'r'}, {"duration", required_argument, 0, 'd'},
        {"warmup", required_argument, 0, 'w'}, {"linger-ms", required_argument, 0, 'l'},
        {"fetch-wait-ms", required_argument, 0, 'f'}, {"csv", required_argument, 0, 'c'},
        {"in-flight", required_argument, 0, 'i'}, {"batch-size", required_argument, 0, 'B'},
        {"idempotent", no_argument, 0, 'I'}, {"txn-records", required_argument, 0, 'T'},
        {"config", required_argument, 0, 'C'}, {0, 0, 0, 0}};
    struct options options = {.partitions = 2, .count = 100000, .size = 1024, .acks = "all",
                              .warmup_s = 1, .linger_ms = -1, .fetch_wait_ms = 10, .in_flight_max = -1,
                              .txn_records = 1000};
    if (argc < 2) usage();
    options.mode = argv[1];
    if (strcmp(options.mode, "version") == 0) {
        printf("rdkafka_bench librdkafka=%s\n", rd_kafka_version_str());
        return 0;
    }
    optind = 2;
    int option;
    while ((option = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
        switch (option) {
        case 'b': options.brokers = optarg; break;
        case 't': options.topic = optarg; break;
        case 'p': options.partitions = atoi(optarg); break;
        case 'n': options.count = atol(optarg); break;
        case 's': options.size = atoi(optarg); break;
        case 'a': options.acks = optarg; break;
        case 'r': options.rate = atof(optarg); break;
        case 'd': options.duration_s = atof(optarg); break;
        case 'w': options.warmup_s = atof(optarg); break;
        case 'l': options.linger_ms = atoi(optarg); break;
        case 'f': options.fetch_wait_ms = atoi(optarg); break;
        case 'c': options.csv_path = optarg; break;
        case 'i': options.in_flight_max = atoi(optarg); break;
        case 'B': options.batch_size = atol(optarg); break;
        case 'I': options.idempotent = 1; break;
        case 'T': options.txn_records = atol(optarg); break;
        case 'C':
            if (options.config_count == CONFIGS_MAX) usage();
            options.configs[options.config_count++] = optarg;
            break;
        default: usage();
        }
    }
    if (!options.brokers || !options.topic || options.partitions < 1 ||
        options.partitions > PARTITIONS_MAX || options.size < 1 || options.count < 1 ||
        options.txn_records < 1)
        usage();
    int is_e2e = strcmp(options.mode, "e2e") == 0;
    int is_latency = strcmp(options.mode, "latency") == 0;
    /* Throughput runs batch like librdkafka's default (5 ms); latency runs send at once. */
    if (options.linger_ms < 0) options.linger_ms = (is_e2e || is_latency) ? 0 : 5;
    /* Without linger, records batch only while earlier requests are in flight: 5, the Java
     * producer's default, instead of librdkafka's 1000000 (one request per record at any rate). */
    if (options.in_flight_max < 0) options.in_flight_max = (is_e2e || is_latency) ? 5 : 1000000;
    /* Idempotence (transactions too) allows at most 5 requests in flight. */
    int is_txn = strcmp(options.mode, "txn") == 0;
    if ((options.idempotent || is_txn) && options.in_flight_max > 5) options.in_flight_max = 5;
    if (strcmp(options.mode, "create") == 0) return run_create(&options);
    if (strcmp(options.mode, "produce") == 0) return run_produce(&options);
    if (strcmp(options.mode, "consume") == 0) return run_consume(&options);
    if (strcmp(options.mode, "txn") == 0) return run_txn(&options);
    if (is_e2e) return run_e2e(&options);
    if (is_latency) return run_latency(&options);
    usage();
}
