/*
 * AWS credentials from the environment or the shared credentials file.
 * Any thread: no shared state; the caller caches (see s3.c).
 */
#include "fetch/credentials.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *env_nonempty(const char *name) {
        const char *v = getenv(name);
        return v && *v ? v : NULL;
}

void mmp_aws_credentials_clear(mmp_aws_credentials_t *c) {
        if (!c)
                return;
        if (c->secret_access_key)
                memset(c->secret_access_key, 0, strlen(c->secret_access_key));
        free(c->access_key_id);
        free(c->secret_access_key);
        free(c->session_token);
        free(c->file);
        memset(c, 0, sizeof(*c));
}

static char *trim(char *s) {
        char *e;
        while (*s == ' ' || *s == '\t')
                s++;
        e = s + strlen(s);
        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
                *--e = '\0';
        return s;
}

static int64_t mtime_ns(const struct stat *st) {
        return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

static int set_dup(char **field, const char *v) {
        free(*field);
        return (*field = strdup(v)) ? 0 : -1;
}

int mmp_aws_credentials_from_file(const char *path, const char *profile, mmp_aws_credentials_t *out,
                                  char *errstr, size_t errstr_size) {
        FILE *f;
        char *line = NULL;
        size_t cap = 0;
        int in_profile = 0, seen_profile = 0, lineno = 0, rc = -1;
        struct stat st;

        memset(out, 0, sizeof(*out));
        if (!(f = fopen(path, "re"))) {
                if (errno == ENOENT)
                        snprintf(errstr, errstr_size, "%s does not exist", path);
                else
                        snprintf(errstr, errstr_size, "cannot read %s: %s", path, strerror(errno));
                return -1;
        }
        while (getline(&line, &cap, f) > 0) {
                char *s = trim(line), *eq, *name, *value;
                lineno++;
                if (!*s || *s == '#' || *s == ';')
                        continue;
                if (*s == '[') {
                        char *close = strchr(s, ']');
                        if (!close) {
                                snprintf(errstr, errstr_size, "%s:%d: a section header without ']'", path, lineno);
                                goto out;
                        }
                        *close = '\0';
                        in_profile = !strcmp(trim(s + 1), profile);
                        seen_profile |= in_profile;
                        continue;
                }
                if (!in_profile)
                        continue;
                if (!(eq = strchr(s, '='))) {
                        snprintf(errstr, errstr_size, "%s:%d: expected NAME = VALUE in [%s]", path, lineno, profile);
                        goto out;
                }
                *eq = '\0';
                name = trim(s);
                value = trim(eq + 1);
                /* Keys are case-insensitive in the SDKs' INI reader too. */
                int bad = 0;
                if (!strcasecmp(name, "aws_access_key_id"))
                        bad = set_dup(&out->access_key_id, value);
                else if (!strcasecmp(name, "aws_secret_access_key"))
                        bad = set_dup(&out->secret_access_key, value);
                else if (!strcasecmp(name, "aws_session_token") || !strcasecmp(name, "aws_security_token"))
                        bad = *value ? set_dup(&out->session_token, value) : 0;
                if (bad) {
                        snprintf(errstr, errstr_size, "%s", "out of memory");
                        goto out;
                }
        }
        if (!seen_profile) {
                snprintf(errstr, errstr_size, "%s has no [%s] profile", path, profile);
                goto out;
        }
        if (!out->access_key_id || !*out->access_key_id || !out->secret_access_key || !*out->secret_access_key) {
                snprintf(errstr, errstr_size, "%s: profile [%s] lacks %s", path, profile,
                         !out->access_key_id || !*out->access_key_id ? "aws_access_key_id"
                                                                     : "aws_secret_access_key");
                goto out;
        }
        if (!(out->file = strdup(path)))
                goto out;
        out->file_mtime_ns = fstat(fileno(f), &st) == 0 ? mtime_ns(&st) : 0;
        snprintf(out->source, sizeof(out->source), "%s [%s]", path, profile);
        rc = 0;
out:
        free(line);
        fclose(f);
        if (rc)
                mmp_aws_credentials_clear(out);
        return rc;
}

/* ~/.aws/credentials, or AWS_SHARED_CREDENTIALS_FILE; "~/" expanded. */
static char *credentials_path(const char *configured) {
        const char *p = configured ? configured : env_nonempty("AWS_SHARED_CREDENTIALS_FILE");
        const char *home;
        char *out;
        if (p && strncmp(p, "~/", 2) != 0)
                return strdup(p);
        if (!(home = env_nonempty("HOME"))) {
                struct passwd *pw = getpwuid(getuid());
                home = pw && pw->pw_dir ? pw->pw_dir : "/";
        }
        if (asprintf(&out, "%s/%s", home, p ? p + 2 : ".aws/credentials") < 0)
                return NULL;
        return out;
}

int mmp_aws_credentials_resolve(const mmp_aws_credentials_lookup_t *lookup, mmp_aws_credentials_t *out,
                                char *errstr, size_t errstr_size) {
        const char *key = env_nonempty("AWS_ACCESS_KEY_ID"), *secret = env_nonempty("AWS_SECRET_ACCESS_KEY");
        const char *token = env_nonempty("AWS_SESSION_TOKEN");
        const char *profile = lookup->profile ? lookup->profile : env_nonempty("AWS_PROFILE");
        char why[768], *path;
        int rc;

        memset(out, 0, sizeof(*out));
        if (!token)
                token = env_nonempty("AWS_SECURITY_TOKEN"); /* the older name, still honoured by the SDKs */
        if (!profile)
                profile = "default";
        if (!lookup->profile_is_explicit && (key || secret)) {
                if (!key || !secret) {
                        snprintf(errstr, errstr_size, "incomplete AWS credentials in the environment: %s is set but %s is not",
                                 key ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
                                 key ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
                        return -1;
                }
                if (!(out->access_key_id = strdup(key)) || !(out->secret_access_key = strdup(secret)) ||
                    (token && !(out->session_token = strdup(token)))) {
                        mmp_aws_credentials_clear(out);
                        snprintf(errstr, errstr_size, "%s", "out of memory");
                        return -1;
                }
                snprintf(out->source, sizeof(out->source), "%s", "environment");
                return 0;
        }
        if (!(path = credentials_path(lookup->file))) {
                snprintf(errstr, errstr_size, "%s", "out of memory");
                return -1;
        }
        rc = mmp_aws_credentials_from_file(path, profile, out, why, sizeof(why));
        if (rc)
                snprintf(errstr, errstr_size, "no AWS credentials: %s%s",
                         lookup->profile_is_explicit ? "" : "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set, and ",
                         why);
        free(path);
        return rc;
}

int mmp_aws_credentials_stale(const mmp_aws_credentials_t *c) {
        struct stat st;
        if (!c->file)
                return 0;
        return stat(c->file, &st) != 0 || mtime_ns(&st) != c->file_mtime_ns;
}
