/* vsguest.c - the test guest's workload helper, linked statically into the
 * initramfs (a busybox shell loop cannot keep millisecond deadlines under TCG).
 *
 *   vsguest heartbeat MS        timestamped line on stdout every MS ms
 *   vsguest fill MIB RATE       fill MIB MiB of RAM with pseudo-random data, then
 *                               keep rewriting RATE MiB/s of it (dirty pages for
 *                               memory snapshots)
 *   vsguest counter MS PATH...  write an increasing counter record to every PATH
 *                               every MS ms (format below; read by read-counter)
 *   vsguest powerbutton         power off when the ACPI power button is pressed
 *
 * Counter record format (one 4096-byte record per slot, little-endian):
 *   0    char[8]  magic "VSCOUNT1"
 *   8    u64      counter (starts at 1, +1 per round, continues across boots)
 *   16   u64      guest CLOCK_REALTIME in ns when the round began
 *   24   u64      boot id (random per boot)
 *   32   u32      index of PATH on the command line
 *   36   u32      slot number
 *   40   u8[4048] filler: byte i = (counter * 31 + i * 7 + index) & 0xff
 *   4088 u64      FNV-1a 64 of bytes 0..4087
 * Counter c lives in slot c % 256; the slots are the first 1 MiB of PATH.
 * One round writes c to every PATH in command-line order, then fdatasyncs each,
 * so after round c completes every PATH holds c, and a crash-consistent image
 * of PATH k holds a counter that is never behind a later PATH's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/input.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/reboot.h>
#include <time.h>
#include <unistd.h>

#define REC_SIZE 4096
#define SLOTS 256

static uint64_t now_ns(clockid_t clk) {
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t deadline_ns) {
    struct timespec ts = {(time_t)(deadline_ns / 1000000000ull), (long)(deadline_ns % 1000000000ull)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

static uint64_t fnv1a(const unsigned char *p, size_t n) {
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

static uint64_t rng_state = 88172645463325252ull;
static uint64_t xorshift(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* The gap field is the guest's own view; a pause of the whole VM stops guest
 * time under TCG, so hosts measure pauses by timestamping lines on arrival. */
static int heartbeat(long ms) {
    uint64_t period = (uint64_t)ms * 1000000ull, next = now_ns(CLOCK_MONOTONIC), prev = next;
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (uint64_t seq = 0;; seq++) {
        uint64_t t = now_ns(CLOCK_MONOTONIC);
        printf("VSHB %llu %llu.%03llu gap=%llu\n", (unsigned long long)seq, (unsigned long long)(t / 1000000ull),
               (unsigned long long)(t / 1000ull % 1000ull), (unsigned long long)((t - prev) / 1000000ull));
        prev = t;
        next += period;
        if (next < t) next = t;
        sleep_until(next);
    }
    return 0;
}

static int fill(long mib, long rate_mib) {
    size_t size = (size_t)mib << 20;
    uint64_t *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
        perror("vsguest fill: mmap");
        return 1;
    }
    rng_state ^= now_ns(CLOCK_REALTIME);
    size_t words = size / 8;
    for (size_t i = 0; i < words; i++) mem[i] = xorshift();
    printf("VSFILL done %ld MiB\n", mib);
    fflush(stdout);
    /* Rewrite in 10 ms steps: RATE MiB/s spread over the whole area. */
    size_t step = (size_t)rate_mib * (1u << 20) / 100 / 8, pos = 0;
    uint64_t next = now_ns(CLOCK_MONOTONIC);
    for (;;) {
        for (size_t i = 0; i < step; i++) {
            mem[pos] = xorshift();
            pos = (pos + 1) % words;
        }
        next += 10000000ull;
        sleep_until(next);
    }
    return 0;
}

static void fill_record(unsigned char *rec, uint64_t counter, uint64_t when, uint64_t boot, uint32_t index,
                        uint32_t slot) {
    memcpy(rec, "VSCOUNT1", 8);
    memcpy(rec + 8, &counter, 8);
    memcpy(rec + 16, &when, 8);
    memcpy(rec + 24, &boot, 8);
    memcpy(rec + 32, &index, 4);
    memcpy(rec + 36, &slot, 4);
    for (int i = 40; i < REC_SIZE - 8; i++) rec[i] = (unsigned char)((counter * 31 + (uint64_t)i * 7 + index) & 0xff);
    uint64_t sum = fnv1a(rec, REC_SIZE - 8);
    memcpy(rec + REC_SIZE - 8, &sum, 8);
}

/* Highest valid counter already on the target, so a rebooted guest continues. */
static uint64_t existing_max(int fd, unsigned char *buf) {
    uint64_t max = 0;
    for (int s = 0; s < SLOTS; s++) {
        if (pread(fd, buf, REC_SIZE, (off_t)s * REC_SIZE) != REC_SIZE) break;
        uint64_t c, sum;
        memcpy(&c, buf + 8, 8);
        memcpy(&sum, buf + REC_SIZE - 8, 8);
        if (memcmp(buf, "VSCOUNT1", 8) == 0 && fnv1a(buf, REC_SIZE - 8) == sum && c > max) max = c;
    }
    return max;
}

static int counter(long ms, int npaths, char **paths) {
    int fds[16];
    unsigned char *rec;
    if (npaths > 16 || posix_memalign((void **)&rec, 4096, REC_SIZE) != 0) return 1;
    uint64_t start = 0, boot;
    int rfd = open("/dev/urandom", O_RDONLY);
    if (rfd < 0 || read(rfd, &boot, sizeof boot) != sizeof boot) boot = now_ns(CLOCK_REALTIME);
    if (rfd >= 0) close(rfd);
    for (int i = 0; i < npaths; i++) {
        fds[i] = open(paths[i], O_RDWR | O_CREAT | O_DIRECT, 0644);
        if (fds[i] < 0) fds[i] = open(paths[i], O_RDWR | O_CREAT, 0644);
        if (fds[i] < 0) {
            fprintf(stderr, "vsguest counter: %s: %s\n", paths[i], strerror(errno));
            return 1;
        }
        uint64_t m = existing_max(fds[i], rec);
        if (m > start) start = m;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    uint64_t period = (uint64_t)ms * 1000000ull, next = now_ns(CLOCK_MONOTONIC);
    for (uint64_t c = start + 1;; c++) {
        uint64_t when = now_ns(CLOCK_REALTIME);
        uint32_t slot = (uint32_t)(c % SLOTS);
        for (int i = 0; i < npaths; i++) {
            fill_record(rec, c, when, boot, (uint32_t)i, slot);
            if (pwrite(fds[i], rec, REC_SIZE, (off_t)slot * REC_SIZE) != REC_SIZE)
                fprintf(stderr, "vsguest counter: write %s: %s\n", paths[i], strerror(errno));
        }
        for (int i = 0; i < npaths; i++) fdatasync(fds[i]);
        if (c == start + 1 || c % 100 == 0) printf("VSCNT %llu\n", (unsigned long long)c);
        next += period;
        uint64_t t = now_ns(CLOCK_MONOTONIC);
        if (next < t) next = t;
        sleep_until(next);
    }
    return 0;
}

static int powerbutton(void) {
    struct pollfd fds[16];
    int n = 0;
    char path[64];
    for (int i = 0; i < 16; i++) {
        snprintf(path, sizeof path, "/dev/input/event%d", i);
        int fd = open(path, O_RDONLY);
        if (fd >= 0) fds[n++] = (struct pollfd){fd, POLLIN, 0};
    }
    if (n == 0) return 1;
    for (;;) {
        if (poll(fds, (nfds_t)n, -1) < 0) continue;
        for (int i = 0; i < n; i++) {
            struct input_event ev;
            if (!(fds[i].revents & POLLIN) || read(fds[i].fd, &ev, sizeof ev) != sizeof ev) continue;
            if (ev.type == EV_KEY && ev.code == KEY_POWER && ev.value == 1) {
                printf("VSGUEST power button\n");
                fflush(stdout);
                sync();
                reboot(RB_POWER_OFF);
            }
        }
    }
}

int main(int argc, char **argv) {
    if (argc >= 3 && strcmp(argv[1], "heartbeat") == 0) return heartbeat(atol(argv[2]));
    if (argc >= 3 && strcmp(argv[1], "fill") == 0) return fill(atol(argv[2]), argc > 3 ? atol(argv[3]) : 64);
    if (argc >= 4 && strcmp(argv[1], "counter") == 0) return counter(atol(argv[2]), argc - 3, argv + 3);
    if (argc >= 2 && strcmp(argv[1], "powerbutton") == 0) return powerbutton();
    fprintf(stderr, "usage: vsguest heartbeat MS | fill MIB [RATE] | counter MS PATH... | powerbutton\n");
    return 2;
}
