/* Helpers shared by oauth.c (tokens) and oauth_sasl.c (SASL messages); not a public API. */
#ifndef GANNET_OAUTH_UTIL_H
#define GANNET_OAUTH_UTIL_H

#include <stdbool.h>
#include <stddef.h>

/* The value of one base64url character (RFC 4648 §5), or -1. */
int oauth_b64url_value(unsigned char c);

/* True when S[0..LEN) is valid UTF-8 without control characters. */
bool oauth_utf8_printable(const unsigned char *s, size_t len);

#endif
