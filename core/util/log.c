/*
 * stderr logger. Any thread.
 */
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static volatile int log_level = MMP_LOG_INFO;

void mmp_log_set_level(mmp_log_level_t level) {
        log_level = level;
}

mmp_log_level_t mmp_log_get_level(void) {
        return (mmp_log_level_t)log_level;
}

int mmp_log_level_parse(const char *s) {
        static const char *names[] = {"error", "warn", "info", "debug"};
        for (int i = 0; i < 4; i++)
                if (!strcasecmp(s, names[i]))
                        return i;
        return -1;
}

void mmp_vlog(mmp_log_level_t level, const char *area, const char *fmt, va_list ap) {
        static const char *tags[] = {"ERROR", "WARN", "INFO", "DEBUG"};
        char line[4096];
        struct timespec ts;
        struct tm tm;
        size_t n;

        if ((int)level > log_level)
                return;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
        n += snprintf(line + n, sizeof(line) - n, ".%03ldZ %-5s [%s] ", ts.tv_nsec / 1000000,
                      tags[level & 3], area ? area : "mmpipe");
        if (n < sizeof(line)) {
                int m = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
                if (m > 0)
                        n += (size_t)m;
        }
        if (n > sizeof(line) - 2)
                n = sizeof(line) - 2;
        line[n++] = '\n';
        if (write(STDERR_FILENO, line, n) < 0) {
                /* nowhere left to report it */
        }
}

void mmp_log(mmp_log_level_t level, const char *area, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        mmp_vlog(level, area, fmt, ap);
        va_end(ap);
}
