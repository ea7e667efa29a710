/*
 * The plugin loader: dlopen()s every .so of a folder, checks the ABI,
 * runs init, and keeps the refused files with their reasons.
 * Main thread at start-up; the registry is read-only afterwards.
 */
#ifndef MMP_LOADER_H
#define MMP_LOADER_H

#include <stddef.h>

#include "mmpipe/plugin.h"

typedef struct mmp_plugin_inst {
        char *path;
        void *dl;
        const mmp_plugin_t *desc;
        void *state; /* from init */
        size_t n_ops;
} mmp_plugin_inst_t;

typedef struct mmp_plugin_refusal {
        char *path;
        char *reason;
} mmp_plugin_refusal_t;

typedef struct mmp_plugins {
        mmp_plugin_inst_t *v;
        size_t n;
        mmp_plugin_refusal_t *refused;
        size_t n_refused;
} mmp_plugins_t;

/* Loads one file. Returns 0, or -1 with reason (one line) in errstr. */
int mmp_plugin_load(const char *path, mmp_plugin_inst_t *out, char *errstr, size_t errstr_size);
/* Calls fini and dlclose()s. */
void mmp_plugin_unload(mmp_plugin_inst_t *p);

/* Loads every *.so in dir, in name order; each refused file is logged once
 * ("plugin FILE refused: REASON") and recorded. A missing or unreadable
 * folder is an error (errstr), an empty one is not. */
mmp_plugins_t *mmp_plugins_load_dir(const char *dir, char *errstr, size_t errstr_size);
const mmp_plugin_inst_t *mmp_plugins_find(const mmp_plugins_t *ps, const char *name);
void mmp_plugins_free(mmp_plugins_t *ps);

#endif
