/*
 * Plugin loading: dlopen(RTLD_NOW | RTLD_LOCAL), entry symbol, ABI check,
 * descriptor validation, init. Anything wrong refuses the file with one
 * line naming it and the reason; the engine carries on. Main thread.
 */
#include "loader.h"

#include <ctype.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin/host.h"
#include "util/log.h"

/* The descriptor fields ABI 1.0 reads: everything up to and including fini. */
#define MMP_PLUGIN_V1_SIZE (offsetof(mmp_plugin_t, fini) + sizeof(((mmp_plugin_t *)0)->fini))

static int valid_name(const char *s) {
        if (!s || !islower((unsigned char)*s))
                return 0;
        for (; *s; s++)
                if (!islower((unsigned char)*s) && !isdigit((unsigned char)*s) && *s != '_')
                        return 0;
        return 1;
}

/* Checks the descriptor's shape; fills errstr and returns -1 when unusable. */
static int check_descriptor(const mmp_plugin_t *d, size_t *n_ops, char *errstr, size_t n) {
        if (d->abi_major != MMP_PLUGIN_ABI_MAJOR) {
                snprintf(errstr, n, "plugin ABI %u.%u, this engine speaks ABI %d.x", d->abi_major,
                         d->abi_minor, MMP_PLUGIN_ABI_MAJOR);
                return -1;
        }
        if (d->struct_size < MMP_PLUGIN_V1_SIZE) {
                snprintf(errstr, n, "descriptor size %u is smaller than ABI 1.0's %zu",
                         d->struct_size, (size_t)MMP_PLUGIN_V1_SIZE);
                return -1;
        }
        if (!valid_name(d->name)) {
                snprintf(errstr, n, "invalid plugin name \"%s\" (expected [a-z][a-z0-9_]*)",
                         d->name ? d->name : "(null)");
                return -1;
        }
        if (!d->version || !d->ops) {
                snprintf(errstr, n, "descriptor lacks %s", !d->version ? "a version" : "operations");
                return -1;
        }
        *n_ops = 0;
        for (const mmp_plugin_op_t *op = d->ops; op->name; op++, (*n_ops)++) {
                if (!valid_name(op->name) || !op->fn) {
                        snprintf(errstr, n, "operation #%zu \"%s\" has %s", *n_ops + 1, op->name,
                                 op->fn ? "an invalid name" : "no function");
                        return -1;
                }
        }
        return 0;
}

int mmp_plugin_load(const char *path, mmp_plugin_inst_t *out, char *errstr, size_t n) {
        mmp_plugin_entry_fn entry;
        const mmp_plugin_t *d;
        char initerr[512] = "";
        void *dl;

        memset(out, 0, sizeof(*out));
        if (!(dl = dlopen(path, RTLD_NOW | RTLD_LOCAL))) {
                const char *e = dlerror();
                snprintf(errstr, n, "not a loadable shared object: %s", e ? e : "dlopen failed");
                return -1;
        }
        *(void **)&entry = dlsym(dl, MMP_PLUGIN_ENTRY_SYMBOL);
        if (!entry) {
                snprintf(errstr, n, "no entry symbol %s()", MMP_PLUGIN_ENTRY_SYMBOL);
                goto fail;
        }
        if (!(d = entry())) {
                snprintf(errstr, n, "%s() returned NULL", MMP_PLUGIN_ENTRY_SYMBOL);
                goto fail;
        }
        if (check_descriptor(d, &out->n_ops, errstr, n))
                goto fail;
        if (d->init && d->init(mmp_host_api(), &out->state, initerr, sizeof(initerr))) {
                snprintf(errstr, n, "init failed: %s", initerr[0] ? initerr : "(no reason given)");
                goto fail;
        }
        out->dl = dl;
        out->desc = d;
        out->path = strdup(path);
        return 0;
fail:
        dlclose(dl);
        return -1;
}

void mmp_plugin_unload(mmp_plugin_inst_t *p) {
        if (!p || !p->desc)
                return;
        if (p->desc->fini)
                p->desc->fini(p->state);
        /* Sanitizer builds keep the code mapped so leak reports can symbolize it. */
#ifndef MMP_KEEP_PLUGINS_MAPPED
        dlclose(p->dl);
#endif
        free(p->path);
        memset(p, 0, sizeof(*p));
}

static int ends_with(const char *s, const char *suffix) {
        size_t ls = strlen(s), lx = strlen(suffix);
        return ls >= lx && !strcmp(s + ls - lx, suffix);
}

static int cmp_names(const void *a, const void *b) {
        return strcmp(*(char *const *)a, *(char *const *)b);
}

static void refuse(mmp_plugins_t *ps, const char *path, const char *reason) {
        mmp_plugin_refusal_t *r = realloc(ps->refused, (ps->n_refused + 1) * sizeof(*r));
        mmp_warn("plugins", "plugin %s refused: %s", path, reason);
        if (!r)
                return;
        ps->refused = r;
        r[ps->n_refused].path = strdup(path);
        r[ps->n_refused].reason = strdup(reason);
        ps->n_refused++;
}

/* Lists the *.so names of dir, sorted. Returns count or -1. */
static long list_so(const char *dir, char ***namesp, char *errstr, size_t n) {
        DIR *d = opendir(dir);
        struct dirent *de;
        char **names = NULL;
        long count = 0;
        if (!d) {
                snprintf(errstr, n, "cannot open plugin folder %s: %s", dir, strerror(errno));
                return -1;
        }
        while ((de = readdir(d))) {
                char **tmp;
                if (de->d_name[0] == '.' || !ends_with(de->d_name, ".so"))
                        continue;
                if (!(tmp = realloc(names, (count + 1) * sizeof(*names))))
                        break;
                names = tmp;
                names[count++] = strdup(de->d_name);
        }
        closedir(d);
        if (count)
                qsort(names, count, sizeof(*names), cmp_names);
        *namesp = names;
        return count;
}

mmp_plugins_t *mmp_plugins_load_dir(const char *dir, char *errstr, size_t n) {
        mmp_plugins_t *ps = calloc(1, sizeof(*ps));
        char **names = NULL;
        long count;

        if (!ps)
                return NULL;
        if ((count = list_so(dir, &names, errstr, n)) < 0) {
                free(ps);
                return NULL;
        }
        ps->v = calloc(count ? count : 1, sizeof(*ps->v));
        for (long i = 0; i < count; i++) {
                char path[4096], reason[1024];
                mmp_plugin_inst_t inst;
                snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
                free(names[i]);
                if (mmp_plugin_load(path, &inst, reason, sizeof(reason))) {
                        refuse(ps, path, reason);
                        continue;
                }
                if (mmp_plugins_find(ps, inst.desc->name)) {
                        snprintf(reason, sizeof(reason), "a plugin named \"%s\" is already loaded from %s",
                                 inst.desc->name, mmp_plugins_find(ps, inst.desc->name)->path);
                        mmp_plugin_unload(&inst);
                        refuse(ps, path, reason);
                        continue;
                }
                mmp_debug("plugins", "loaded %s %s from %s (%zu operations)", inst.desc->name,
                          inst.desc->version, path, inst.n_ops);
                ps->v[ps->n++] = inst;
        }
        free(names);
        return ps;
}

const mmp_plugin_inst_t *mmp_plugins_find(const mmp_plugins_t *ps, const char *name) {
        for (size_t i = 0; ps && i < ps->n; i++)
                if (!strcmp(ps->v[i].desc->name, name))
                        return &ps->v[i];
        return NULL;
}

void mmp_plugins_free(mmp_plugins_t *ps) {
        if (!ps)
                return;
        for (size_t i = 0; i < ps->n; i++)
                mmp_plugin_unload(&ps->v[i]);
        for (size_t i = 0; i < ps->n_refused; i++) {
                free(ps->refused[i].path);
                free(ps->refused[i].reason);
        }
        free(ps->v);
        free(ps->refused);
        free(ps);
}
