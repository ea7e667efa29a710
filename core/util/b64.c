/*
 * Base64 encoding and decoding. Any thread.
 */
#include "b64.h"

#include <stdint.h>
#include <stdlib.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *mmp_b64_encode(const void *data, size_t len, size_t *outlen) {
        const uint8_t *in = data;
        size_t olen = 4 * ((len + 2) / 3), o = 0;
        char *out = malloc(olen + 1);
        if (!out)
                return NULL;
        for (size_t i = 0; i < len; i += 3) {
                uint32_t v = (uint32_t)in[i] << 16;
                if (i + 1 < len)
                        v |= (uint32_t)in[i + 1] << 8;
                if (i + 2 < len)
                        v |= in[i + 2];
                out[o++] = alphabet[(v >> 18) & 63];
                out[o++] = alphabet[(v >> 12) & 63];
                out[o++] = i + 1 < len ? alphabet[(v >> 6) & 63] : '=';
                out[o++] = i + 2 < len ? alphabet[v & 63] : '=';
        }
        out[o] = '\0';
        if (outlen)
                *outlen = o;
        return out;
}

static int sextet(char c) {
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '+')
                return 62;
        if (c == '/')
                return 63;
        return -1;
}

char *mmp_b64_decode(const char *s, size_t len, size_t *outlen) {
        char *out = malloc(len / 4 * 3 + 3);
        uint32_t acc = 0;
        int bits = 0, pad = 0;
        size_t o = 0;
        if (!out)
                return NULL;
        for (size_t i = 0; i < len; i++) {
                char c = s[i];
                int v;
                if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
                        continue;
                if (c == '=') {
                        pad++;
                        continue;
                }
                if (pad || (v = sextet(c)) < 0)
                        goto bad; /* data after padding, or a foreign character */
                acc = (acc << 6) | (uint32_t)v;
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        out[o++] = (char)((acc >> bits) & 0xff);
                }
        }
        if (pad > 2 || bits >= 6)
                goto bad;
        if (outlen)
                *outlen = o;
        return out;
bad:
        free(out);
        return NULL;
}
