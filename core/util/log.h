/*
 * Logging to stderr: one line per message, "time level [area] message".
 * Any thread; a line is written with one write() so lines never interleave.
 */
#ifndef MMP_LOG_H
#define MMP_LOG_H

#include <stdarg.h>

#include "mmpipe/plugin.h" /* mmp_log_level_t */

void mmp_log_set_level(mmp_log_level_t level);
mmp_log_level_t mmp_log_get_level(void);
/* Parses "error", "warn", "info", "debug"; returns -1 when unknown. */
int mmp_log_level_parse(const char *s);

void mmp_log(mmp_log_level_t level, const char *area, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void mmp_vlog(mmp_log_level_t level, const char *area, const char *fmt, va_list ap);

#define mmp_err(area, ...) mmp_log(MMP_LOG_ERROR, area, __VA_ARGS__)
#define mmp_warn(area, ...) mmp_log(MMP_LOG_WARN, area, __VA_ARGS__)
#define mmp_info(area, ...) mmp_log(MMP_LOG_INFO, area, __VA_ARGS__)
#define mmp_debug(area, ...) mmp_log(MMP_LOG_DEBUG, area, __VA_ARGS__)

#endif
