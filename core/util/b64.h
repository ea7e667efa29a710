/*
 * Base64 (RFC 4648, standard alphabet, padded). Any thread.
 */
#ifndef MMP_B64_H
#define MMP_B64_H

#include <stddef.h>

/* Returns a new NUL-terminated string (free()); *outlen if non-NULL. */
char *mmp_b64_encode(const void *data, size_t len, size_t *outlen);
/* Returns new bytes (free()) or NULL on invalid input. Whitespace is skipped. */
char *mmp_b64_decode(const char *s, size_t len, size_t *outlen);

#endif
