/*
 * Dead letters for local runs: one JSON line per failed event, with the
 * original event, stage, error class, message, attempts, pipeline and
 * traceback, so the event can be inspected and replayed.
 * Thread-safe: any thread may write.
 */
#ifndef MMP_DEADLETTER_H
#define MMP_DEADLETTER_H

#include <jansson.h>

#include "util/err.h"

typedef struct mmp_deadletter mmp_deadletter_t;

/* path "-" means stderr. Appends; creates the file with its directory. */
mmp_deadletter_t *mmp_deadletter_open(const char *path, char *errstr, size_t errstr_size);

/* Writes one line and flushes it. event: the original event as received
 * (borrowed). source: where it came from, e.g. {"type":"file","path":...}
 * (borrowed, may be NULL). Returns 0 or -1 (logged). */
int mmp_deadletter_write(mmp_deadletter_t *dl, const json_t *event, const json_t *source,
                         const mmp_failure_t *failure);

/* Number of lines written since open. */
long mmp_deadletter_count(const mmp_deadletter_t *dl);
const char *mmp_deadletter_path(const mmp_deadletter_t *dl);
void mmp_deadletter_close(mmp_deadletter_t *dl);

#endif
