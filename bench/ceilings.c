/*
 * ceilings: two of the physical limits bench/broker.sh sets the brokers against (the disk's
 * sequential bandwidth comes from dd and loopback TCP from iperf3, as in bench/storage.sh).
 *
 *   memcpy        single-threaded memcpy of a --mib MiB buffer into another, --rounds times after
 *                 one untimed round (so that both buffers are faulted in); reports the median
 *                 MiB/s copied (each byte is read once and written once).
 *   dsync-write   --count writes of --size bytes (4 KiB) with O_DIRECT|O_DSYNC, appended to a
 *                 fresh file in --dir; reports the per-write latency percentiles in microseconds:
 *                 the floor under any acks=all latency on this disk when the broker fsyncs each
 *                 request (a write plus a flush of the device cache, one at a time).
 *
 * Prints one machine-readable line, `ceilings mode=... key=value ...`.
 *
 * Build: gcc -O2 -Wall -o ceilings bench/ceilings.c
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DIRECT_ALIGNMENT 4096
#define ROUNDS_MAX 100

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, const char *detail) {
    fprintf(stderr, "ceilings: %s: %s\n", what, detail);
    exit(1);
}

static int compare_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int compare_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static int run_memcpy(long mib, int rounds) {
    size_t bytes = (size_t)mib << 20;
    char *source = malloc(bytes), *target = malloc(bytes);
    if (!source || !target) die("out of memory", "memcpy buffers");
    memset(source, 0x5a, bytes);
    memset(target, 0, bytes);
    memcpy(target, source, bytes); /* untimed */
    double rates[ROUNDS_MAX];
    for (int round = 0; round < rounds; round++) {
        uint64_t start = now_ns();
        memcpy(target, source, bytes);
        double seconds = (double)(now_ns() - start) / 1e9;
        rates[round] = (double)mib / seconds;
        source[round] ^= target[bytes - 1 - round]; /* keep the copies observable */
    }
    qsort(rates, (size_t)rounds, sizeof(double), compare_double);
    printf("ceilings mode=memcpy mib=%ld rounds=%d mib_per_s=%.0f min_mib_per_s=%.0f max_mib_per_s=%.0f\n",
           mib, rounds, rates[rounds / 2], rates[0], rates[rounds - 1]);
    free(source);
    free(target);
    return 0;
}

static double percentile_us(const uint64_t *sorted, long count, double p) {
    long rank = (long)(p / 100.0 * (double)count + 0.999999);
    if (rank < 1) rank = 1;
    if (rank > count) rank = count;
    return (double)sorted[rank - 1] / 1000.0;
}

static int run_dsync_write(const char *dir, long count, long size) {
    char path[4096];
    snprintf(path, sizeof path, "%s/ceilings-dsync.bin", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_DIRECT | O_DSYNC, 0600);
    if (fd < 0) die("cannot open with O_DIRECT|O_DSYNC (tmpfs?)", path);
    void *block;
    if (posix_memalign(&block, DIRECT_ALIGNMENT, (size_t)size)) die("out of memory", "block");
    memset(block, 0xa5, (size_t)size);
    uint64_t *latency = malloc((size_t)count * sizeof(uint64_t));
    if (!latency) die("out of memory", "latencies");
    uint64_t start = now_ns();
    for (long i = 0; i < count; i++) {
        uint64_t before = now_ns();
        if (write(fd, block, (size_t)size) != size) die("write", path);
        latency[i] = now_ns() - before;
    }
    double seconds = (double)(now_ns() - start) / 1e9;
    close(fd);
    unlink(path);
    qsort(latency, (size_t)count, sizeof(uint64_t), compare_u64);
    printf("ceilings mode=dsync-write size=%ld count=%ld writes_per_s=%.0f p50_us=%.1f p99_us=%.1f "
           "p999_us=%.1f max_us=%.1f\n",
           size, count, count / seconds, percentile_us(latency, count, 50),
           percentile_us(latency, count, 99), percentile_us(latency, count, 99.9),
           percentile_us(latency, count, 100));
    free(latency);
    free(block);
    return 0;
}

int main(int argc, char **argv) {
    static const struct option long_options[] = {
        {"mib", required_argument, 0, 'm'}, {"rounds", required_argument, 0, 'r'},
        {"dir", required_argument, 0, 'd'}, {"count", required_argument, 0, 'n'},
        {"size", required_argument, 0, 's'}, {0, 0, 0, 0}};
    long mib = 512, count = 1000, size = 4096;
    int rounds = 5;
    const char *dir = ".";
    if (argc < 2) goto usage;
    optind = 2;
    int option;
    while ((option = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
        switch (option) {
        case 'm': mib = atol(optarg); break;
        case 'r': rounds = atoi(optarg); break;
        case 'd': dir = optarg; break;
        case 'n': count = atol(optarg); break;
        case 's': size = atol(optarg); break;
        default: goto usage;
        }
    }
    if (mib < 1 || rounds < 1 || rounds > ROUNDS_MAX || count < 1 || size < 512 ||
        size % 512)
        goto usage;
    if (strcmp(argv[1], "memcpy") == 0) return run_memcpy(mib, rounds);
    if (strcmp(argv[1], "dsync-write") == 0) return run_dsync_write(dir, count, size);
usage:
    fprintf(stderr, "usage: ceilings memcpy [--mib N (512)] [--rounds N (5)]\n"
                    "       ceilings dsync-write --dir DIR [--count N (1000)] [--size BYTES (4096)]\n");
    return 2;
}
