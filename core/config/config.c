/*
 * The JSON configuration: embedded defaults, the user file deep-merged over
 * them, ${ENV} interpolation, --set overrides and a schema check whose every
 * error names the key path. Main thread at start-up; read-only afterwards.
 */
#include "util/jsonw.h"
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/err.h"

/* Functions returning int return 0 or a negative mmp_err_t. */

struct mmp_config {
        json_t *root;      /* the merged document */
        json_t *overrides; /* shape of the --set assignments (leaves = true), so
                            * errors can say "--set" instead of the file */
        char *origin;      /* file name, "<embedded defaults>" or caller's label */
};

#define DEFAULTS_ORIGIN "<embedded defaults>"
#define SET_ORIGIN "--set"

static int fail(char *errstr, size_t errstr_size, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *errstr, size_t errstr_size, int code, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        if (errstr && errstr_size)
                vsnprintf(errstr, errstr_size, fmt, ap);
        va_end(ap);
        return code;
}

/* ---- key paths ("connections.mongo.uri", "models.list[2]") --------------- */

typedef struct path {
        char s[512]; /* a longer path is truncated: it only appears in messages */
        size_t len;
} path_t;

static size_t path_push(path_t *p, const char *key) {
        size_t old = p->len;
        int n = snprintf(p->s + old, sizeof(p->s) - old, "%s%s", old ? "." : "", key);
        p->len = n < 0 || (size_t)n >= sizeof(p->s) - old ? sizeof(p->s) - 1 : old + (size_t)n;
        return old;
}

static size_t path_push_index(path_t *p, size_t i) {
        size_t old = p->len;
        int n = snprintf(p->s + old, sizeof(p->s) - old, "[%zu]", i);
        p->len = n < 0 || (size_t)n >= sizeof(p->s) - old ? sizeof(p->s) - 1 : old + (size_t)n;
        return old;
}

static void path_pop(path_t *p, size_t old) {
        p->len = old;
        p->s[old] = '\0';
}

/* json_object_get with a key that is not NUL-terminated. */
static json_t *object_getn(const json_t *obj, const char *key, size_t len) {
        char small[128];
        char *k = len < sizeof(small) ? small : malloc(len + 1);
        if (!k)
                return NULL;
        memcpy(k, key, len);
        k[len] = '\0';
        json_t *v = json_object_get(obj, k);
        if (k != small)
                free(k);
        return v;
}

/* ---- growable string for interpolation ---------------------------------- */

typedef struct strbuf {
        char *p;
        size_t len, cap;
} strbuf_t;

static int sb_add(strbuf_t *b, const char *s, size_t n) {
        if (b->len + n + 1 > b->cap) {
                size_t cap = b->cap ? b->cap : 64;
                while (cap < b->len + n + 1)
                        cap *= 2;
                char *p = realloc(b->p, cap);
                if (!p)
                        return MMP_ERR_NOMEM;
                b->p = p;
                b->cap = cap;
        }
        memcpy(b->p + b->len, s, n);
        b->len += n;
        b->p[b->len] = '\0';
        return MMP_OK;
}

/* ---- loading ------------------------------------------------------------ */

/* Objects merge key by key; anything else in src replaces dst's value. The
 * top-level "connections" object is the exception: a user who names their
 * connections gets exactly those, without the default "local". And a model
 * the user names replaces the default of that name whole (a SageMaker model
 * must not inherit the local one's plugin and op). depth: 0 at the top. */
static int merge(json_t *dst, json_t *src, int depth, const char *parent) {
        const char *key;
        json_t *v;
        json_object_foreach(src, key, v) {
                json_t *d = json_object_get(dst, key);
                int whole = (depth == 0 && strcmp(key, "connections") == 0) ||
                            (depth == 1 && parent && strcmp(parent, "models") == 0);
                if (!whole && json_is_object(d) && json_is_object(v)) {
                        if (merge(d, v, depth + 1, key) != 0)
                                return MMP_ERR_NOMEM;
                } else if (json_object_set(dst, key, v) != 0) {
                        return MMP_ERR_NOMEM;
                }
        }
        return MMP_OK;
}

static int is_name_start(int c) {
        return isalpha(c) || c == '_';
}

static int is_name_char(int c) {
        return isalnum(c) || c == '_';
}

/* Expands ${VAR}, ${VAR:-fallback} and $${ in s[0..n) into out. Like the
 * shell, the fallback applies when VAR is unset or empty; it is literal text
 * up to the first '}'. */
static int expand(const char *s, size_t n, strbuf_t *out, const char *where, char *errstr,
                  size_t errstr_size) {
        size_t i = 0;
        while (i < n) {
                if (s[i] == '$' && i + 2 < n && s[i + 1] == '$' && s[i + 2] == '{') {
                        if (sb_add(out, "${", 2) != 0)
                                return MMP_ERR_NOMEM;
                        i += 3;
                        continue;
                }
                if (!(s[i] == '$' && i + 1 < n && s[i + 1] == '{')) {
                        if (sb_add(out, s + i, 1) != 0)
                                return MMP_ERR_NOMEM;
                        i++;
                        continue;
                }
                const char *name = s + i + 2;
                const char *end = memchr(name, '}', n - (i + 2));
                if (!end)
                        return fail(errstr, errstr_size, MMP_ERR_CONFIG,
                                    "%s: unterminated \"${\" (write \"$${\" for a literal \"${\")",
                                    where);
                size_t nlen = 0;
                while (name + nlen < end && is_name_char((unsigned char)name[nlen]))
                        nlen++;
                const char *rest = name + nlen;
                int has_fallback = end - rest >= 2 && rest[0] == ':' && rest[1] == '-';
                if (nlen == 0 || !is_name_start((unsigned char)name[0]) ||
                    (rest != end && !has_fallback))
                        return fail(errstr, errstr_size, MMP_ERR_CONFIG,
                                    "%s: bad variable reference \"%.*s\" (expected ${NAME} or "
                                    "${NAME:-fallback})",
                                    where, (int)(end + 1 - (s + i)), s + i);
                char var[256];
                if (nlen >= sizeof(var))
                        return fail(errstr, errstr_size, MMP_ERR_CONFIG,
                                    "%s: variable name too long", where);
                memcpy(var, name, nlen);
                var[nlen] = '\0';
                const char *val = getenv(var);
                int rc;
                if (has_fallback && (!val || !*val))
                        rc = sb_add(out, rest + 2, (size_t)(end - (rest + 2)));
                else if (!val)
                        return fail(errstr, errstr_size, MMP_ERR_CONFIG,
                                    "%s: environment variable %s is not set", where, var);
                else
                        rc = sb_add(out, val, strlen(val));
                if (rc != 0)
                        return rc;
                i = (size_t)(end - s) + 1;
        }
        return MMP_OK;
}

/* Replaces references in every string value below v, in place. */
static int interpolate(json_t *v, path_t *path, const char *origin, char *errstr,
                       size_t errstr_size) {
        int rc = MMP_OK;
        if (json_is_string(v)) {
                const char *s = json_string_value(v);
                size_t n = json_string_length(v);
                if (!memchr(s, '$', n))
                        return MMP_OK;
                char where[600];
                snprintf(where, sizeof(where), "%s: %s", origin, path->s);
                strbuf_t out = {0};
                if ((rc = sb_add(&out, "", 0)) == 0 &&
                    (rc = expand(s, n, &out, where, errstr, errstr_size)) == 0 &&
                    json_string_setn(v, out.p, out.len) != 0)
                        rc = fail(errstr, errstr_size, MMP_ERR_CONFIG,
                                  "%s: value is not valid UTF-8 after interpolation", where);
                if (rc == MMP_ERR_NOMEM)
                        fail(errstr, errstr_size, rc, "%s: out of memory", where);
                free(out.p);
        } else if (json_is_object(v)) {
                const char *key;
                json_t *child;
                json_object_foreach(v, key, child) {
                        size_t old = path_push(path, key);
                        rc = interpolate(child, path, origin, errstr, errstr_size);
                        path_pop(path, old);
                        if (rc != 0)
                                break;
                }
        } else if (json_is_array(v)) {
                size_t i;
                json_t *child;
                json_array_foreach(v, i, child) {
                        size_t old = path_push_index(path, i);
                        rc = interpolate(child, path, origin, errstr, errstr_size);
                        path_pop(path, old);
                        if (rc != 0)
                                break;
                }
        }
        return rc;
}

/* text == NULL: defaults only. */
static mmp_config_t *load_buffer(const char *text, size_t len, const char *origin, char *errstr,
                                 size_t errstr_size) {
        mmp_config_t *cfg = calloc(1, sizeof(*cfg));
        json_error_t e;
        if (!cfg || !(cfg->origin = strdup(origin)) || !(cfg->overrides = json_object())) {
                fail(errstr, errstr_size, MMP_ERR_NOMEM, "%s: out of memory", origin);
                goto fail;
        }
        if (!(cfg->root = json_loads(mmp_config_defaults_text(), 0, &e))) {
                fail(errstr, errstr_size, MMP_ERR_CONFIG, DEFAULTS_ORIGIN ":%d:%d: %s", e.line,
                     e.column, e.text);
                goto fail;
        }
        if (text) {
                /* Duplicate keys in a hand-written file are a mistake, not an override. */
                json_t *user = json_loadb(text, len, JSON_REJECT_DUPLICATES, &e);
                if (!user) {
                        if (e.line > 0)
                                fail(errstr, errstr_size, MMP_ERR_CONFIG, "%s:%d:%d: %s", origin,
                                     e.line, e.column, e.text);
                        else
                                fail(errstr, errstr_size, MMP_ERR_CONFIG, "%s: %s", origin, e.text);
                        goto fail;
                }
                if (!json_is_object(user)) {
                        fail(errstr, errstr_size, MMP_ERR_CONFIG,
                             "%s: expected a JSON object at the top level", origin);
                        json_decref(user);
                        goto fail;
                }
                int rc = merge(cfg->root, user, 0, NULL);
                json_decref(user);
                if (rc != 0) {
                        fail(errstr, errstr_size, rc, "%s: out of memory", origin);
                        goto fail;
                }
        }
        path_t path = {.len = 0};
        path.s[0] = '\0';
        if (interpolate(cfg->root, &path, origin, errstr, errstr_size) != 0)
                goto fail;
        return cfg;
fail:
        mmp_config_free(cfg);
        return NULL;
}

mmp_config_t *mmp_config_load_string(const char *text, const char *origin, char *errstr,
                                     size_t errstr_size) {
        return load_buffer(text, text ? strlen(text) : 0, origin ? origin : "<string>", errstr,
                           errstr_size);
}

/* Reads a whole (small) file; *out is NUL-terminated and owned by the caller. */
static int read_file(const char *path, char **out, size_t *len_out, char *errstr,
                     size_t errstr_size) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return fail(errstr, errstr_size, MMP_ERR_IO, "cannot read config %s: %s", path,
                            strerror(errno));
        strbuf_t b = {0};
        char chunk[8192];
        int rc = sb_add(&b, "", 0);
        while (rc == 0) {
                ssize_t n = read(fd, chunk, sizeof(chunk));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        rc = fail(errstr, errstr_size, MMP_ERR_IO, "cannot read config %s: %s",
                                  path, strerror(errno));
                else if (n == 0)
                        break;
                else if ((rc = sb_add(&b, chunk, (size_t)n)) != 0)
                        fail(errstr, errstr_size, rc, "cannot read config %s: out of memory",
                             path);
        }
        close(fd);
        if (rc != 0) {
                free(b.p);
                return rc;
        }
        *out = b.p;
        *len_out = b.len;
        return MMP_OK;
}

mmp_config_t *mmp_config_load(const char *path, char *errstr, size_t errstr_size) {
        if (!path)
                return load_buffer(NULL, 0, DEFAULTS_ORIGIN, errstr, errstr_size);
        char *text;
        size_t len;
        if (read_file(path, &text, &len, errstr, errstr_size) != 0)
                return NULL;
        mmp_config_t *cfg = load_buffer(text, len, path, errstr, errstr_size);
        free(text);
        return cfg;
}

/* ---- --set -------------------------------------------------------------- */

/* Remembers that key (segments split at '.') was set on the command line. */
static int note_override(json_t *node, const char *key) {
        for (const char *seg = key;;) {
                const char *dot = strchr(seg, '.');
                size_t n = dot ? (size_t)(dot - seg) : strlen(seg);
                char *name = strndup(seg, n);
                if (!name)
                        return MMP_ERR_NOMEM;
                json_t *child = json_object_get(node, name);
                int rc = 0;
                if (child && !json_is_object(child)) {
                        free(name); /* an ancestor was set whole: already covered */
                        return MMP_OK;
                }
                if (!dot)
                        rc = json_object_set_new(node, name, json_true());
                else if (!child && (rc = json_object_set_new(node, name, child = json_object())))
                        child = NULL;
                free(name);
                if (rc != 0)
                        return MMP_ERR_NOMEM;
                if (!dot)
                        return MMP_OK;
                node = child;
                seg = dot + 1;
        }
}

/* Errors describe the assignment's problem only ("engine.lanes is not an
 * object"): the caller names the assignment (the CLI prints "--set ARG: "). */
int mmp_config_set(mmp_config_t *cfg, const char *assignment, char *errstr, size_t errstr_size) {
        const char *eq = strchr(assignment, '=');
        if (!eq)
                return fail(errstr, errstr_size, MMP_ERR_CONFIG,
                            "expected KEY=VALUE (e.g. engine.lanes=4)");
        size_t klen = (size_t)(eq - assignment);
        if (klen == 0)
                return fail(errstr, errstr_size, MMP_ERR_CONFIG, "empty key");
        int empty_segment = assignment[0] == '.' || assignment[klen - 1] == '.';
        for (size_t i = 1; i < klen; i++)
                empty_segment |= assignment[i] == '.' && assignment[i - 1] == '.';
        if (empty_segment)
                return fail(errstr, errstr_size, MMP_ERR_CONFIG, "empty key segment in \"%.*s\"",
                            (int)klen, assignment);
        char *key = strndup(assignment, klen);
        if (!key)
                return fail(errstr, errstr_size, MMP_ERR_NOMEM, "out of memory");
        /* A value that is valid JSON is taken as JSON (4, true, {"a":1},
         * "\"quoted\""); anything else is the literal string. */
        json_t *value = json_loads(eq + 1, JSON_DECODE_ANY, NULL);
        if (!value)
                value = json_string(eq + 1);
        int rc = MMP_OK;
        json_t *node = cfg->root;
        const char *seg = key;
        if (!value) {
                rc = fail(errstr, errstr_size, MMP_ERR_CONFIG, "value is not valid UTF-8");
                goto out;
        }
        for (;;) {
                const char *dot = strchr(seg, '.');
                size_t n = dot ? (size_t)(dot - seg) : strlen(seg);
                key[seg - key + n] = '\0'; /* key now ends at this segment */
                if (!dot) {
                        if (json_object_set(node, seg, value) != 0)
                                rc = MMP_ERR_NOMEM;
                        break;
                }
                json_t *child = json_object_get(node, seg);
                if (!child) {
                        if (json_object_set_new(node, seg, child = json_object()) != 0) {
                                rc = MMP_ERR_NOMEM;
                                break;
                        }
                } else if (!json_is_object(child)) {
                        rc = fail(errstr, errstr_size, MMP_ERR_CONFIG, "%s is not an object",
                                  key);
                        goto out;
                }
                key[seg - key + n] = '.';
                node = child;
                seg = dot + 1;
        }
        if (rc == 0)
                rc = note_override(cfg->overrides, key);
        if (rc != 0)
                fail(errstr, errstr_size, rc, "out of memory");
out:
        json_decref(value);
        free(key);
        return rc;
}

/* ---- validation --------------------------------------------------------- */

typedef enum kind {
        K_INT,         /* integer in [min, INT_MAX] */
        K_STRING,      /* any string */
        K_PATH,        /* non-empty string */
        K_BOOL,
        K_ENUM,        /* one of choices */
        K_OBJECT,      /* any object; defined elsewhere, not looked into */
        K_SECTION,     /* object with the fixed keys in children */
        K_CONNECTIONS, /* name -> connection */
} kind_t;

typedef struct key_spec {
        const char *name;
        kind_t kind;
        int64_t min;
        const char *const *choices;      /* K_ENUM, NULL-ended */
        const struct key_spec *children; /* K_SECTION, ended by a NULL name */
} key_spec_t;

static const char *const source_types[] = {"dir", "kafka", NULL};
static const char *const log_levels[] = {"error", "warn", "info", "debug", NULL};
static const char *const conn_type_names[] = {"sqlite", "jsonl", "mongodb", NULL};

static const key_spec_t engine_keys[] = {
    {"lanes", K_INT, 0, NULL, NULL},
    {"workers", K_INT, 0, NULL, NULL},
    {"max_in_flight", K_INT, 1, NULL, NULL},
    {"handler_timeout_ms", K_INT, 1, NULL, NULL},
    {"lua_memory_mb", K_INT, 1, NULL, NULL},
    {NULL, 0, 0, NULL, NULL},
};
static const key_spec_t dir_keys[] = {
    {"dir", K_STRING, 0, NULL, NULL},
    {NULL, 0, 0, NULL, NULL},
};
static const key_spec_t source_keys[] = {
    {"type", K_ENUM, 0, source_types, NULL},
    {"path", K_STRING, 0, NULL, NULL},
    {"watch", K_BOOL, 0, NULL, NULL},
    {"recursive", K_BOOL, 0, NULL, NULL},
    {"kafka", K_OBJECT, 0, NULL, NULL},
    {NULL, 0, 0, NULL, NULL},
};
static const key_spec_t dead_letter_keys[] = {
    {"path", K_STRING, 0, NULL, NULL},
    {NULL, 0, 0, NULL, NULL},
};
static const key_spec_t log_keys[] = {
    {"level", K_ENUM, 0, log_levels, NULL},
    {NULL, 0, 0, NULL, NULL},
};
static const key_spec_t top_keys[] = {
    {"engine", K_SECTION, 0, NULL, engine_keys},
    {"plugins", K_SECTION, 0, NULL, dir_keys},
    {"pipelines", K_SECTION, 0, NULL, dir_keys},
    {"source", K_SECTION, 0, NULL, source_keys},
    {"default_connection", K_STRING, 0, NULL, NULL},
    {"connections", K_CONNECTIONS, 0, NULL, NULL},
    {"dead_letters", K_SECTION, 0, NULL, dead_letter_keys},
    {"log", K_SECTION, 0, NULL, log_keys},
    /* Sections other parts of the engine define and check themselves. */
    {"kafka", K_OBJECT, 0, NULL, NULL},
    {"s3", K_OBJECT, 0, NULL, NULL},
    {"sagemaker", K_OBJECT, 0, NULL, NULL},
    {"models", K_OBJECT, 0, NULL, NULL},
    {"admin", K_OBJECT, 0, NULL, NULL},
    {NULL, 0, 0, NULL, NULL},
};

/* Connection types: every key listed is required ("type" is implied);
 * open types accept further keys (driver options). */
static const key_spec_t sqlite_keys[] = {
    {"path", K_PATH, 0, NULL, NULL},
    {"busy_timeout_ms", K_INT, 0, NULL, NULL}, /* optional: integers are never required */
    {NULL, 0, 0, NULL, NULL},
};
static const key_spec_t jsonl_keys[] = {
    {"path", K_PATH, 0, NULL, NULL}, /* "-" = stdout */
    {NULL, 0, 0, NULL, NULL},
};
static const key_spec_t mongodb_keys[] = {
    {"uri", K_PATH, 0, NULL, NULL},
    {"database", K_PATH, 0, NULL, NULL},
    {NULL, 0, 0, NULL, NULL},
};
static const struct conn_type {
        const char *name;
        const key_spec_t *keys;
        int open;
} conn_types[] = {
    {"sqlite", sqlite_keys, 0},
    {"jsonl", jsonl_keys, 0},
    {"mongodb", mongodb_keys, 1},
};

typedef struct check {
        const mmp_config_t *cfg;
        path_t path;
        char *errstr;
        size_t errstr_size;
} check_t;

/* "--set" when the value at path (or an ancestor) came from --set, else the file. */
static const char *origin_of(const mmp_config_t *cfg, const char *path) {
        const json_t *node = cfg->overrides;
        for (const char *seg = path; *seg;) {
                const char *dot = strchr(seg, '.');
                size_t n = dot ? (size_t)(dot - seg) : strlen(seg);
                if (!json_is_object(node))
                        return SET_ORIGIN;
                if (!(node = object_getn(node, seg, n)))
                        return cfg->origin;
                if (!dot)
                        break;
                seg = dot + 1;
        }
        return SET_ORIGIN;
}

static int check_fail(check_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "<origin>: " + the formatted message. */
static int check_fail(check_t *c, const char *fmt, ...) {
        char msg[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        return fail(c->errstr, c->errstr_size, MMP_ERR_CONFIG, "%s: %s",
                    origin_of(c->cfg, c->path.s), msg);
}

/* `"a", "b", "c"` or `a, b, c` (quoted = 0) */
static void join_names(char *out, size_t size, const char *const *names, size_t count,
                       int quoted) {
        size_t len = 0;
        out[0] = '\0';
        for (size_t i = 0; i < count && names[i] && len < size; i++) {
                int n = snprintf(out + len, size - len, quoted ? "%s\"%s\"" : "%s%s",
                                 i ? ", " : "", names[i]);
                if (n < 0)
                        break;
                len += (size_t)n;
        }
}

static void spec_names(const key_spec_t *keys, const char *extra, char *out, size_t size) {
        const char *names[32];
        size_t n = 0;
        if (extra)
                names[n++] = extra;
        for (; keys->name && n < 32; keys++)
                names[n++] = keys->name;
        join_names(out, size, names, n, 0);
}

static int expected(check_t *c, const char *what, const json_t *got) {
        char shown[48];
        mmp_json_excerpt(got, shown);
        return check_fail(c, "%s: expected %s, got %s", c->path.s, what, shown);
}

static int in_choices(const char *s, const char *const *choices) {
        for (; *choices; choices++)
                if (strcmp(s, *choices) == 0)
                        return 1;
        return 0;
}

static int check_section(check_t *c, const key_spec_t *keys, const char *extra, const json_t *obj,
                         int required);
static int check_connections(check_t *c, const json_t *v);

static int check_value(check_t *c, const key_spec_t *k, const json_t *v) {
        char what[256];
        switch (k->kind) {
        case K_INT:
                if (!json_is_integer(v) || json_integer_value(v) < k->min)
                        return expected(c, k->min == 0 ? "a non-negative integer"
                                           : k->min == 1 ? "a positive integer"
                                                         : "a larger integer",
                                        v);
                if (json_integer_value(v) > INT_MAX) {
                        snprintf(what, sizeof(what), "an integer from %lld to %d",
                                 (long long)k->min, INT_MAX);
                        return expected(c, what, v);
                }
                return MMP_OK;
        case K_STRING:
                return json_is_string(v) ? MMP_OK : expected(c, "a string", v);
        case K_PATH:
                return json_is_string(v) && json_string_length(v) > 0
                           ? MMP_OK
                           : expected(c, "a non-empty string", v);
        case K_BOOL:
                return json_is_boolean(v) ? MMP_OK : expected(c, "true or false", v);
        case K_ENUM:
                if (json_is_string(v) && in_choices(json_string_value(v), k->choices))
                        return MMP_OK;
                strcpy(what, "one of ");
                join_names(what + 7, sizeof(what) - 7, k->choices, SIZE_MAX, 1);
                return expected(c, what, v);
        case K_OBJECT:
                return json_is_object(v) ? MMP_OK : expected(c, "an object", v);
        case K_SECTION:
                if (!json_is_object(v))
                        return expected(c, "an object", v);
                return check_section(c, k->children, NULL, v, 0);
        case K_CONNECTIONS:
                return check_connections(c, v);
        }
        return MMP_OK;
}

/* Checks obj's keys against keys (plus `extra`, a key the caller checks).
 * required: every key in keys must be present. */
static int check_section(check_t *c, const key_spec_t *keys, const char *extra, const json_t *obj,
                         int required) {
        const char *name;
        const json_t *v;
        json_object_foreach((json_t *)obj, name, v) {
                if (extra && strcmp(name, extra) == 0)
                        continue;
                const key_spec_t *k = keys;
                while (k->name && strcmp(k->name, name) != 0)
                        k++;
                size_t old = path_push(&c->path, name);
                int rc;
                if (k->name) {
                        rc = check_value(c, k, v);
                } else {
                        char known[512];
                        spec_names(keys, extra, known, sizeof(known));
                        rc = check_fail(c, "unknown key \"%s\" (known: %s)", c->path.s, known);
                }
                path_pop(&c->path, old);
                if (rc != 0)
                        return rc;
        }
        for (const key_spec_t *k = keys; required && k->name; k++)
                if (k->kind != K_INT && !json_object_get(obj, k->name))
                        return check_fail(c, "%s: missing \"%s\" (%s)", c->path.s, k->name,
                                          k->kind == K_PATH ? "a non-empty string" : "required");
        return MMP_OK;
}

static int check_connection(check_t *c, const json_t *conn) {
        if (!json_is_object(conn))
                return expected(c, "an object", conn);
        char known[128];
        join_names(known, sizeof(known), conn_type_names, SIZE_MAX, 0);
        const json_t *type = json_object_get(conn, "type");
        if (!type)
                return check_fail(c, "%s: missing \"type\" (one of: %s)", c->path.s, known);
        size_t old = path_push(&c->path, "type");
        int rc = MMP_OK;
        const struct conn_type *t = NULL;
        if (!json_is_string(type)) {
                rc = expected(c, "a connection type name", type);
        } else {
                for (size_t i = 0; i < sizeof(conn_types) / sizeof(conn_types[0]); i++)
                        if (strcmp(json_string_value(type), conn_types[i].name) == 0)
                                t = &conn_types[i];
                if (!t)
                        rc = check_fail(c, "%s: unknown connection type \"%s\" (known: %s)",
                                        c->path.s, json_string_value(type), known);
        }
        path_pop(&c->path, old);
        if (rc != 0)
                return rc;
        if (!t->open)
                return check_section(c, t->keys, "type", conn, 1);
        /* Open types: check the keys we know, let the driver judge the rest. */
        for (const key_spec_t *k = t->keys; k->name; k++) {
                const json_t *v = json_object_get(conn, k->name);
                if (!v)
                        return check_fail(c, "%s: missing \"%s\" (a non-empty string)", c->path.s,
                                          k->name);
                old = path_push(&c->path, k->name);
                rc = check_value(c, k, v);
                path_pop(&c->path, old);
                if (rc != 0)
                        return rc;
        }
        return MMP_OK;
}

static int check_connections(check_t *c, const json_t *v) {
        if (!json_is_object(v))
                return expected(c, "an object", v);
        const char *name;
        const json_t *conn;
        json_object_foreach((json_t *)v, name, conn) {
                /* Names become key paths ("connections.NAME.path"): keep them one segment. */
                if (!*name || strchr(name, '.'))
                        return check_fail(c, "%s: connection name \"%s\" must be non-empty and "
                                          "contain no \".\"",
                                          c->path.s, name);
                size_t old = path_push(&c->path, name);
                int rc = check_connection(c, conn);
                path_pop(&c->path, old);
                if (rc != 0)
                        return rc;
        }
        return MMP_OK;
}

int mmp_config_validate(const mmp_config_t *cfg, char *errstr, size_t errstr_size) {
        check_t c = {.cfg = cfg, .errstr = errstr, .errstr_size = errstr_size};
        c.path.s[0] = '\0';
        int rc = check_section(&c, top_keys, NULL, cfg->root, 0);
        if (rc != 0)
                return rc;

        /* Cross-key rule, checked once each key is known to be well-formed. */
        const json_t *dc = json_object_get(cfg->root, "default_connection");
        const json_t *conns = json_object_get(cfg->root, "connections");
        if (json_is_string(dc) && json_is_object(conns) &&
            !json_object_get(conns, json_string_value(dc))) {
                char names[512];
                size_t len = 0;
                const char *name;
                const json_t *conn;
                names[0] = '\0';
                json_object_foreach((json_t *)conns, name, conn) {
                        int n = snprintf(names + len, sizeof(names) - len, "%s%s",
                                         len ? ", " : "", name);
                        if (n < 0 || (size_t)n >= sizeof(names) - len)
                                break;
                        len += (size_t)n;
                }
                path_push(&c.path, "default_connection");
                return check_fail(&c, "default_connection: no connection named \"%s\" (defined: %s)",
                                  json_string_value(dc), len ? names : "none");
        }
        return MMP_OK;
}

/* ---- accessors ---------------------------------------------------------- */

const json_t *mmp_config_get(const mmp_config_t *cfg, const char *path) {
        if (!cfg)
                return NULL;
        const json_t *node = cfg->root;
        if (!path || !*path)
                return node;
        for (const char *seg = path;;) {
                const char *dot = strchr(seg, '.');
                size_t n = dot ? (size_t)(dot - seg) : strlen(seg);
                if (!json_is_object(node) || !(node = object_getn(node, seg, n)))
                        return NULL;
                if (!dot)
                        return node;
                seg = dot + 1;
        }
}

const char *mmp_config_str(const mmp_config_t *cfg, const char *path, const char *def) {
        const json_t *v = mmp_config_get(cfg, path);
        return json_is_string(v) ? json_string_value(v) : def;
}

int64_t mmp_config_int(const mmp_config_t *cfg, const char *path, int64_t def) {
        const json_t *v = mmp_config_get(cfg, path);
        return json_is_integer(v) ? (int64_t)json_integer_value(v) : def;
}

int mmp_config_bool(const mmp_config_t *cfg, const char *path, int def) {
        const json_t *v = mmp_config_get(cfg, path);
        return json_is_boolean(v) ? json_is_true(v) : def;
}

const char *mmp_config_origin(const mmp_config_t *cfg) {
        return cfg ? cfg->origin : NULL;
}

const json_t *mmp_config_root(const mmp_config_t *cfg) {
        return cfg ? cfg->root : NULL;
}

void mmp_config_free(mmp_config_t *cfg) {
        if (!cfg)
                return;
        json_decref(cfg->root);
        json_decref(cfg->overrides);
        free(cfg->origin);
        free(cfg);
}
