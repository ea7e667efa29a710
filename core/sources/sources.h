/*
 * Local sources: files named on the command line and folders, scanned once
 * or watched with inotify. They make events and hand them to the engine.
 * The thread that calls them (the CLI thread).
 */
#ifndef MMP_SOURCES_H
#define MMP_SOURCES_H

#include <signal.h>
#include <stddef.h>

#include "engine/event.h"

/* An event for a local file (absolute path; not resolved through symlinks
 * so a vanished file still gets an event that fails clearly). */
mmp_event_t *mmp_event_from_path(const char *path);

/* Regular, non-hidden files under dir (sorted). Returns 0 or -1 with errstr. */
int mmp_dir_list(const char *dir, int recursive, char ***pathsp, size_t *np, char *errstr, size_t errstr_size);
void mmp_paths_free(char **paths, size_t n);

typedef struct mmp_dir_watch mmp_dir_watch_t;
/* Starts watching dir (and, when recursive, its sub-folders, including new
 * ones) for files that finish being written or are moved in. */
mmp_dir_watch_t *mmp_dir_watch_new(const char *dir, int recursive, char *errstr, size_t errstr_size);
/* Waits up to timeout_ms; returns the paths that landed (caller frees with
 * mmp_paths_free), or -1 on error. */
int mmp_dir_watch_poll(mmp_dir_watch_t *w, int timeout_ms, char ***pathsp, size_t *np);
void mmp_dir_watch_free(mmp_dir_watch_t *w);

#endif
