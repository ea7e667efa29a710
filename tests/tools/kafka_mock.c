/*
 * kafka_mock: a Kafka stand-in for the tests and benchmarks: librdkafka's mock cluster (brokers on
 * 127.0.0.1, random ports) kept alive until SIGTERM/SIGINT, with faults injected through a control
 * FIFO while it runs. The main thread reads signals and commands; librdkafka's mock thread serves.
 *
 *   kafka_mock [--brokers N] [--topic NAME:PARTITIONS]... [--ready-file PATH] [--control PATH]
 *
 * Prints "bootstrap=HOST:PORT,..." on stdout once the cluster serves (and writes the same line to
 * the ready file, atomically), then one line per control command: "control N ok: CMD" or
 * "control N error: CMD: reason". Exits 0 on SIGTERM/SIGINT, 1 on a startup failure, 2 on usage.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define KM_MAX_TOPICS 64
#define KM_LINE_MAX 1024

static const char usage[] =
    "usage: kafka_mock [--brokers N] [--topic NAME:PARTITIONS]... [--ready-file PATH] [--control PATH]\n"
    "\n"
    "Runs librdkafka's mock Kafka cluster on 127.0.0.1 until SIGTERM or SIGINT.\n"
    "  --brokers N               brokers in the cluster, ids 1..N (default 3)\n"
    "  --topic NAME:PARTITIONS   create a topic (replication factor 1); repeatable\n"
    "  --ready-file PATH         write \"bootstrap=...\" here once serving; removed on exit\n"
    "  --control PATH            FIFO (created if missing, removed on exit if created) read for\n"
    "                            commands, one per line:\n"
    "      broker-down ID | broker-up ID     ID -1 = every broker\n"
    "      rtt ID MS                         added round-trip time of a broker (-1 = all)\n"
    "      topic-create NAME PARTITIONS\n"
    "      request-errors API_KEY ERR...     the next requests of that ApiKey fail with these\n"
    "                                        librdkafka error codes (e.g. 1 27 = Fetch, rebalance)\n"
    "      ping                              does nothing; its acknowledgement shows the\n"
    "                                        commands before it were applied\n";

typedef struct km_opts {
        int brokers;
        int topic_cnt;
        const char *topic_specs[KM_MAX_TOPICS];
        const char *ready_file;
        const char *control_path;
} km_opts_t;

static int parse_int(const char *s, long min, long max, long *out) {
        char *end;
        long v;

        errno = 0;
        v = strtol(s, &end, 10);
        if (errno || end == s || *end || v < min || v > max)
                return -1;
        *out = v;
        return 0;
}

/* Splits "NAME:PARTITIONS" in place into name and count; -1 if malformed. */
static int parse_topic_spec(char *spec, char **name, int *partitions) {
        char *colon = strrchr(spec, ':');
        long n;

        if (!colon || colon == spec || parse_int(colon + 1, 1, 100000, &n))
                return -1;
        *colon = '\0';
        *name = spec;
        *partitions = (int)n;
        return 0;
}

static int parse_args(int argc, char **argv, km_opts_t *o) {
        long n;

        o->brokers = 3;
        for (int i = 1; i < argc; i++) {
                const char *a = argv[i];
                const char *v = i + 1 < argc ? argv[i + 1] : NULL;

                if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
                        fputs(usage, stdout);
                        exit(0);
                }
                if (!v) {
                        fprintf(stderr, "kafka_mock: unknown option or missing value: %s\n\n%s", a, usage);
                        return -1;
                }
                if (!strcmp(a, "--brokers")) {
                        if (parse_int(v, 1, 64, &n)) {
                                fprintf(stderr, "kafka_mock: --brokers wants 1..64, got \"%s\"\n", v);
                                return -1;
                        }
                        o->brokers = (int)n;
                } else if (!strcmp(a, "--topic")) {
                        if (o->topic_cnt == KM_MAX_TOPICS) {
                                fprintf(stderr, "kafka_mock: more than %d --topic options\n", KM_MAX_TOPICS);
                                return -1;
                        }
                        o->topic_specs[o->topic_cnt++] = v;
                } else if (!strcmp(a, "--ready-file")) {
                        o->ready_file = v;
                } else if (!strcmp(a, "--control")) {
                        o->control_path = v;
                } else {
                        fprintf(stderr, "kafka_mock: unknown option %s\n\n%s", a, usage);
                        return -1;
                }
                i++;
        }
        return 0;
}

/* Creates one topic; on failure prints why, naming the topic, and returns -1. */
static int topic_create(rd_kafka_mock_cluster_t *mc, const char *name, int partitions, char *err,
                        size_t err_size) {
        rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(mc, name, partitions, 1);

        if (e) {
                snprintf(err, err_size, "creating topic \"%s\" with %d partitions: %s", name, partitions,
                         rd_kafka_err2str(e));
                return -1;
        }
        return 0;
}

/* Writes "bootstrap=..." to path through a temporary file and rename(), so a poller sees either
 * no file or the whole line. */
static int write_ready_file(const char *path, const char *line) {
        char tmp[PATH_MAX];
        FILE *f;

        if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof(tmp)) {
                fprintf(stderr, "kafka_mock: ready file path too long: %s\n", path);
                return -1;
        }
        f = fopen(tmp, "w");
        if (!f) {
                fprintf(stderr, "kafka_mock: cannot create ready file %s: %s\n", tmp, strerror(errno));
                return -1;
        }
        fprintf(f, "%s\n", line);
        if (fclose(f) != 0 || rename(tmp, path) != 0) {
                fprintf(stderr, "kafka_mock: cannot write ready file %s: %s\n", path, strerror(errno));
                unlink(tmp);
                return -1;
        }
        return 0;
}

/* Opens the control FIFO, creating it if missing (*created says so). Opened read-write so that
 * writers coming and going never give us end-of-file, and non-blocking so open does not wait. */
static int control_open(const char *path, int *created) {
        struct stat st;
        int fd;

        *created = 0;
        if (stat(path, &st) != 0) {
                if (mkfifo(path, 0600) != 0) {
                        fprintf(stderr, "kafka_mock: cannot create control FIFO %s: %s\n", path,
                                strerror(errno));
                        return -1;
                }
                *created = 1;
        } else if (!S_ISFIFO(st.st_mode)) {
                fprintf(stderr, "kafka_mock: control path %s exists and is not a FIFO\n", path);
                return -1;
        }
        fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
                fprintf(stderr, "kafka_mock: cannot open control FIFO %s: %s\n", path, strerror(errno));
        return fd;
}

/* Applies "request-errors API_KEY ERR..." (words already split); 0 or -1 with err set. */
static int cmd_request_errors(rd_kafka_mock_cluster_t *mc, char **w, int wc, char *err, size_t err_size) {
        rd_kafka_resp_err_t codes[32];
        long key, code;
        int cnt = wc - 2;

        if (wc < 3 || cnt > 32 || parse_int(w[1], 0, INT16_MAX, &key)) {
                snprintf(err, err_size, "want: request-errors API_KEY ERR... (at most 32 codes)");
                return -1;
        }
        for (int i = 0; i < cnt; i++) {
                if (parse_int(w[2 + i], -200, 1000, &code)) {
                        snprintf(err, err_size, "error code \"%s\" is not a number", w[2 + i]);
                        return -1;
                }
                codes[i] = (rd_kafka_resp_err_t)code;
        }
        rd_kafka_mock_push_request_errors_array(mc, (int16_t)key, (size_t)cnt, codes);
        return 0;
}

/* Applies one control command (line is split in place); 0 or -1 with err set. */
static int control_apply(rd_kafka_mock_cluster_t *mc, char *line, char *err, size_t err_size) {
        char *w[40], *save = NULL;
        int wc = 0;
        long id, ms, parts;
        rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;

        for (char *t = strtok_r(line, " \t", &save); t && wc < 40; t = strtok_r(NULL, " \t", &save))
                w[wc++] = t;
        if (wc == 0) {
                snprintf(err, err_size, "empty command");
                return -1;
        }
        if (!strcmp(w[0], "ping") && wc == 1)
                return 0;
        if ((!strcmp(w[0], "broker-down") || !strcmp(w[0], "broker-up")) && wc == 2 &&
            !parse_int(w[1], -1, INT32_MAX, &id)) {
                e = w[0][7] == 'd' ? rd_kafka_mock_broker_set_down(mc, (int32_t)id)
                                   : rd_kafka_mock_broker_set_up(mc, (int32_t)id);
        } else if (!strcmp(w[0], "rtt") && wc == 3 && !parse_int(w[1], -1, INT32_MAX, &id) &&
                   !parse_int(w[2], 0, INT_MAX, &ms)) {
                e = rd_kafka_mock_broker_set_rtt(mc, (int32_t)id, (int)ms);
        } else if (!strcmp(w[0], "topic-create") && wc == 3 && !parse_int(w[2], 1, 100000, &parts)) {
                return topic_create(mc, w[1], (int)parts, err, err_size);
        } else if (!strcmp(w[0], "request-errors")) {
                return cmd_request_errors(mc, w, wc, err, err_size);
        } else {
                snprintf(err, err_size, "unknown command or bad arguments (see kafka_mock --help)");
                return -1;
        }
        if (e) {
                snprintf(err, err_size, "%s", rd_kafka_err2str(e));
                return -1;
        }
        return 0;
}

/* Acknowledges one command line on stdout as "control N ok: LINE" or "control N error: LINE: why"
 * (tools/kafka_cluster.sh counts these lines to wait for its command). */
static void control_ack(const char *line, int ok, const char *why) {
        static unsigned long seq;

        seq++;
        if (ok)
                printf("control %lu ok: %s\n", seq, line);
        else
                printf("control %lu error: %s: %s\n", seq, line, why);
        fflush(stdout);
}

/* Reads what the FIFO holds and applies every complete line. The partial tail stays in buf (of
 * size KM_LINE_MAX, *len bytes used) for the next read; a line too long for buf is dropped whole
 * (*skipping until its newline) and acknowledged as an error. */
static void control_read(int fd, rd_kafka_mock_cluster_t *mc, char *buf, size_t *len, int *skipping) {
        char err[2 * KM_LINE_MAX], echo[KM_LINE_MAX];
        ssize_t n;
        char *nl;

        n = read(fd, buf + *len, KM_LINE_MAX - 1 - *len);
        if (n <= 0)
                return;
        *len += (size_t)n;
        buf[*len] = '\0';
        while ((nl = strchr(buf, '\n')) != NULL) {
                *nl = '\0';
                if (nl > buf && nl[-1] == '\r')
                        nl[-1] = '\0';
                if (*skipping) {
                        *skipping = 0;
                        control_ack("(a line)", 0, "longer than the 1022 bytes a command may have");
                } else if (buf[0] != '\0' && buf[0] != '#') {
                        snprintf(echo, sizeof(echo), "%s", buf);
                        if (control_apply(mc, buf, err, sizeof(err)) == 0)
                                control_ack(echo, 1, NULL);
                        else
                                control_ack(echo, 0, err);
                }
                *len -= (size_t)(nl + 1 - buf);
                memmove(buf, nl + 1, *len + 1);
        }
        if (*len == KM_LINE_MAX - 1) {
                *skipping = 1;
                *len = 0;
        }
}

/* Waits for SIGTERM/SIGINT (through sigfd) while serving the control FIFO (ctl_fd, or -1). */
static void serve(int sigfd, int ctl_fd, rd_kafka_mock_cluster_t *mc) {
        struct pollfd p[2] = {{.fd = sigfd, .events = POLLIN}, {.fd = ctl_fd, .events = POLLIN}};
        char buf[KM_LINE_MAX];
        size_t len = 0;
        int skipping = 0;

        for (;;) {
                if (poll(p, ctl_fd >= 0 ? 2 : 1, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        fprintf(stderr, "kafka_mock: poll failed: %s\n", strerror(errno));
                        return;
                }
                if (p[0].revents)
                        return; /* a blocked SIGTERM or SIGINT is pending: stop */
                if (ctl_fd >= 0 && (p[1].revents & POLLIN))
                        control_read(ctl_fd, mc, buf, &len, &skipping);
        }
}

/* The producer handle the mock cluster needs for its bookkeeping; it never produces. */
static rd_kafka_t *host_handle_new(void) {
        char errstr[512];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_t *rk;

        /* No bootstrap.servers: without this, librdkafka warns that it cannot connect anywhere. */
        if (rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
                fprintf(stderr, "kafka_mock: setting log_level: %s\n", errstr);
                rd_kafka_conf_destroy(conf);
                return NULL;
        }
        rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr)); /* conf freed on success */
        if (!rk) {
                fprintf(stderr, "kafka_mock: creating the librdkafka handle: %s\n", errstr);
                rd_kafka_conf_destroy(conf);
        }
        return rk;
}

/* Creates the --topic topics; -1 after printing which one failed. */
static int create_topics(rd_kafka_mock_cluster_t *mc, km_opts_t *o) {
        char err[1024], *name, spec[512];
        int parts;

        for (int i = 0; i < o->topic_cnt; i++) {
                snprintf(spec, sizeof(spec), "%s", o->topic_specs[i]);
                if (parse_topic_spec(spec, &name, &parts)) {
                        fprintf(stderr, "kafka_mock: --topic wants NAME:PARTITIONS, got \"%s\"\n",
                                o->topic_specs[i]);
                        return -1;
                }
                if (topic_create(mc, name, parts, err, sizeof(err))) {
                        fprintf(stderr, "kafka_mock: %s\n", err);
                        return -1;
                }
        }
        return 0;
}

int main(int argc, char **argv) {
        km_opts_t o = {0};
        rd_kafka_t *rk = NULL;
        rd_kafka_mock_cluster_t *mc = NULL;
        char line[4096];
        sigset_t mask;
        int sigfd = -1, ctl_fd = -1, ctl_created = 0, rc = 1;

        if (parse_args(argc, argv, &o))
                return 2;
        /* Block the stop signals before librdkafka starts its threads, so they inherit the mask
         * and the signals reach only our signalfd. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        if (pthread_sigmask(SIG_BLOCK, &mask, NULL) != 0 || (sigfd = signalfd(-1, &mask, SFD_CLOEXEC)) < 0) {
                fprintf(stderr, "kafka_mock: cannot set up signal handling: %s\n", strerror(errno));
                return 1;
        }
        signal(SIGPIPE, SIG_IGN);
        if (o.control_path && (ctl_fd = control_open(o.control_path, &ctl_created)) < 0)
                goto out;
        if (!(rk = host_handle_new()))
                goto out;
        if (!(mc = rd_kafka_mock_cluster_new(rk, o.brokers))) {
                fprintf(stderr, "kafka_mock: creating a mock cluster of %d brokers failed\n", o.brokers);
                goto out;
        }
        if (create_topics(mc, &o))
                goto out;
        snprintf(line, sizeof(line), "bootstrap=%s", rd_kafka_mock_cluster_bootstraps(mc));
        if (o.ready_file && write_ready_file(o.ready_file, line))
                goto out;
        printf("%s\n", line);
        fflush(stdout);

        serve(sigfd, ctl_fd, mc);
        rc = 0;
out:
        if (mc)
                rd_kafka_mock_cluster_destroy(mc);
        if (rk)
                rd_kafka_destroy(rk);
        if (o.ready_file && rc == 0)
                unlink(o.ready_file);
        if (ctl_fd >= 0)
                close(ctl_fd);
        if (ctl_created)
                unlink(o.control_path);
        close(sigfd);
        return rc;
}
