/*
 * AWS credentials, found the way the AWS SDKs look for them: the
 * environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN),
 * else a profile of the shared credentials file (~/.aws/credentials).
 * Instance roles, SSO and assume-role are not supported. Any thread.
 */
#ifndef MMP_CREDENTIALS_H
#define MMP_CREDENTIALS_H

#include <stddef.h>
#include <stdint.h>

typedef struct mmp_aws_credentials {
        char *access_key_id;
        char *secret_access_key;
        char *session_token; /* NULL when none */
        char *file;          /* the shared file they came from; NULL = the environment */
        int64_t file_mtime_ns; /* that file's modification time when read */
        char source[512];    /* for messages: "environment" or "FILE [profile]" */
} mmp_aws_credentials_t;

/* Where to look. Strings are borrowed; NULL picks the default. */
typedef struct mmp_aws_credentials_lookup {
        const char *profile;      /* NULL: AWS_PROFILE, else "default" */
        const char *file;         /* NULL: AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials */
        int profile_is_explicit;  /* a configured profile: skip the environment's keys, as the SDKs do */
} mmp_aws_credentials_lookup_t;

/* Fills out (which the caller clears with mmp_aws_credentials_clear) and
 * returns 0; or returns -1 with errstr saying where it looked and what was
 * missing ("no AWS credentials: AWS_ACCESS_KEY_ID is not set and
 * /home/u/.aws/credentials has no [prod] profile"). */
int mmp_aws_credentials_resolve(const mmp_aws_credentials_lookup_t *lookup, mmp_aws_credentials_t *out,
                                char *errstr, size_t errstr_size);

/* Reads one profile of a shared credentials file (INI: [profile] sections,
 * aws_access_key_id, aws_secret_access_key, aws_session_token; '#' and ';'
 * start comments). Same contract as above. */
int mmp_aws_credentials_from_file(const char *path, const char *profile, mmp_aws_credentials_t *out,
                                  char *errstr, size_t errstr_size);

/* Has the file these credentials came from changed since it was read? */
int mmp_aws_credentials_stale(const mmp_aws_credentials_t *c);

/* Frees the strings (wiping the secret) and zeroes c. Accepts NULL. */
void mmp_aws_credentials_clear(mmp_aws_credentials_t *c);

#endif
