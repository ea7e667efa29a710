/*
 * Folder and file sources: listing, inotify watching, events for paths.
 * CLI thread.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sources/sources.h"

/* Removes ".", ".." and repeated slashes from an absolute path, lexically
 * (symlinks are not resolved: the key stays the path the user knows). */
static void normalize_path(char *p) {
        char *out = p, *in = p;
        while (*in) {
                while (*in == '/')
                        in++;
                char *seg = in;
                while (*in && *in != '/')
                        in++;
                size_t len = (size_t)(in - seg);
                if (len == 0 || (len == 1 && seg[0] == '.'))
                        continue;
                if (len == 2 && seg[0] == '.' && seg[1] == '.') {
                        while (out > p && *--out != '/')
                                ;
                        continue;
                }
                *out++ = '/';
                memmove(out, seg, len);
                out += len;
        }
        if (out == p)
                *out++ = '/';
        *out = '\0';
}

mmp_event_t *mmp_event_from_path(const char *path) {
        char abs[PATH_MAX], cwd[PATH_MAX], id[PATH_MAX + 8], url[PATH_MAX + 8];
        mmp_event_t *ev;
        if (path[0] == '/')
                snprintf(abs, sizeof(abs), "%s", path);
        else if (getcwd(cwd, sizeof(cwd)))
                snprintf(abs, sizeof(abs), "%s/%s", cwd, path);
        else
                snprintf(abs, sizeof(abs), "%s", path);
        normalize_path(abs);
        snprintf(id, sizeof(id), "file:%s", abs);
        snprintf(url, sizeof(url), "file://%s", abs);
        /* room for url, event_name, original ({"path":...}) and what fetching adds */
        size_t extra = strlen(url) + sizeof("file") + 2 * (strlen(abs) + 1) + 12 + MMP_EVENT_FETCH_ROOM;
        if (!(ev = mmp_event_new(id, "", abs, extra)))
                return NULL;
        mmp_event_set(ev, &ev->url, url);
        mmp_event_set(ev, &ev->event_name, "file");
        ev->source.type = MMP_SOURCE_FILE;
        json_t *original = json_pack("{s:s}", "path", abs);
        char *text = json_dumps(original, JSON_COMPACT);
        json_decref(original);
        mmp_event_set(ev, &ev->original, text);
        free(text);
        return ev;
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct pathvec {
        char **v;
        size_t n, cap;
} pathvec_t;

static void pathvec_push(pathvec_t *pv, const char *p) {
        if (pv->n == pv->cap) {
                pv->cap = pv->cap ? pv->cap * 2 : 64;
                pv->v = realloc(pv->v, pv->cap * sizeof(char *));
        }
        pv->v[pv->n++] = strdup(p);
}

static int list_into(const char *dir, int recursive, pathvec_t *pv, char *err, size_t n) {
        DIR *d = opendir(dir);
        struct dirent *de;
        if (!d) {
                snprintf(err, n, "cannot read folder %s: %s", dir, strerror(errno));
                return -1;
        }
        while ((de = readdir(d))) {
                char p[PATH_MAX];
                struct stat st;
                if (de->d_name[0] == '.')
                        continue;
                snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
                /* d_type spares a stat per file; symlinks and file systems
                 * that do not fill it in are asked with stat. */
                if (de->d_type == DT_REG)
                        st.st_mode = S_IFREG;
                else if (de->d_type == DT_DIR)
                        st.st_mode = S_IFDIR;
                else if (stat(p, &st))
                        continue; /* vanished meanwhile */
                if (S_ISREG(st.st_mode))
                        pathvec_push(pv, p);
                else if (S_ISDIR(st.st_mode) && recursive && list_into(p, recursive, pv, err, n)) {
                        closedir(d);
                        return -1;
                }
        }
        closedir(d);
        return 0;
}

int mmp_dir_list(const char *dir, int recursive, char ***pathsp, size_t *np, char *err, size_t n) {
        pathvec_t pv = {0};
        if (list_into(dir, recursive, &pv, err, n)) {
                mmp_paths_free(pv.v, pv.n);
                return -1;
        }
        if (pv.n)
                qsort(pv.v, pv.n, sizeof(char *), cmp_str);
        *pathsp = pv.v;
        *np = pv.n;
        return 0;
}

void mmp_paths_free(char **paths, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(paths[i]);
        free(paths);
}

struct mmp_dir_watch {
        int fd;
        int recursive;
        char **dirs; /* by watch descriptor */
        int n_dirs;
};

static int watch_add(mmp_dir_watch_t *w, const char *dir) {
        int wd = inotify_add_watch(w->fd, dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_ONLYDIR);
        if (wd < 0)
                return -1;
        if (wd >= w->n_dirs) {
                w->dirs = realloc(w->dirs, (wd + 1) * sizeof(char *));
                memset(w->dirs + w->n_dirs, 0, (wd + 1 - w->n_dirs) * sizeof(char *));
                w->n_dirs = wd + 1;
        }
        free(w->dirs[wd]);
        w->dirs[wd] = strdup(dir);
        if (w->recursive) {
                DIR *d = opendir(dir);
                struct dirent *de;
                while (d && (de = readdir(d))) {
                        char p[PATH_MAX];
                        struct stat st;
                        if (de->d_name[0] == '.')
                                continue;
                        snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
                        if (!stat(p, &st) && S_ISDIR(st.st_mode))
                                watch_add(w, p);
                }
                if (d)
                        closedir(d);
        }
        return 0;
}

mmp_dir_watch_t *mmp_dir_watch_new(const char *dir, int recursive, char *err, size_t n) {
        mmp_dir_watch_t *w = calloc(1, sizeof(*w));
        w->recursive = recursive;
        if ((w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0 || watch_add(w, dir)) {
                snprintf(err, n, "cannot watch folder %s: %s", dir, strerror(errno));
                mmp_dir_watch_free(w);
                return NULL;
        }
        return w;
}

int mmp_dir_watch_poll(mmp_dir_watch_t *w, int timeout_ms, char ***pathsp, size_t *np) {
        struct pollfd pfd = {.fd = w->fd, .events = POLLIN};
        char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
        pathvec_t pv = {0};
        ssize_t len;
        *pathsp = NULL;
        *np = 0;
        if (poll(&pfd, 1, timeout_ms) <= 0)
                return 0;
        while ((len = read(w->fd, buf, sizeof(buf))) > 0) {
                for (char *p = buf; p < buf + len;) {
                        struct inotify_event *ie = (struct inotify_event *)p;
                        p += sizeof(*ie) + ie->len;
                        if (!ie->len || ie->wd < 0 || ie->wd >= w->n_dirs || !w->dirs[ie->wd] || ie->name[0] == '.')
                                continue;
                        char path[PATH_MAX];
                        snprintf(path, sizeof(path), "%s/%s", w->dirs[ie->wd], ie->name);
                        if (ie->mask & IN_ISDIR) {
                                if (w->recursive && (ie->mask & (IN_CREATE | IN_MOVED_TO))) {
                                        pathvec_t sub = {0};
                                        char e[256];
                                        watch_add(w, path);
                                        /* files written before the watch existed */
                                        list_into(path, 1, &sub, e, sizeof(e));
                                        for (size_t i = 0; i < sub.n; i++) {
                                                pathvec_push(&pv, sub.v[i]);
                                                free(sub.v[i]);
                                        }
                                        free(sub.v);
                                }
                        } else if (ie->mask & (IN_CLOSE_WRITE | IN_MOVED_TO)) {
                                pathvec_push(&pv, path);
                        }
                }
        }
        *pathsp = pv.v;
        *np = pv.n;
        return 0;
}

void mmp_dir_watch_free(mmp_dir_watch_t *w) {
        if (!w)
                return;
        if (w->fd >= 0)
                close(w->fd);
        for (int i = 0; i < w->n_dirs; i++)
                free(w->dirs[i]);
        free(w->dirs);
        free(w);
}
