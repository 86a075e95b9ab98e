/* Password hashing and verification: {ARGON2ID} via libargon2, the crypt family via libxcrypt. */
#ifndef GANNET_PWHASH_H
#define GANNET_PWHASH_H

#include <stddef.h>

/* Longest stored hash string we produce or accept ("{SCHEME}" prefix included). */
#define PWHASH_MAX 512

/* Verify PASSWORD (LEN bytes, may hold any byte but NUL) against STORED, a Dovecot-style
 * "{SCHEME}hash" string. Schemes: ARGON2ID, ARGON2I, SHA512-CRYPT, SHA256-CRYPT, BLF-CRYPT,
 * CRYPT (any libxcrypt prefix, yescrypt "$y$" included), PLAIN, CLEAR. A hash with no {SCHEME}
 * prefix is treated as CRYPT. Comparisons are constant-time. Returns 1 match, 0 mismatch (also
 * for a password with NUL or over PASSWORD_MAX), -1 unusable hash (unknown scheme, malformed,
 * argon2 cost out of bounds) with *ERROR_R set to a static string. Thread-safe. */
int pwhash_verify(const char *password, size_t len, const char *stored, const char **error_r);

/* Hash PASSWORD with SCHEME ("ARGON2ID" default when NULL: t=3, m=64 MiB, p=1, 16-byte salt,
 * 32-byte tag; or "SHA512-CRYPT", "SHA256-CRYPT", "BLF-CRYPT" (72 bytes max), "YESCRYPT" (written
 * as "{CRYPT}$y$..."), "PLAIN") into OUT as "{SCHEME}...". Salts from getrandom(2). 0 or -1 with
 * *ERROR_R (unknown scheme, NUL in the password, too long for the scheme, OUT too small). */
int pwhash_make(const char *password, size_t len, const char *scheme, char *out, size_t outsize,
                const char **error_r);

/* Verify PASSWORD against a built-in ARGON2ID hash with pwhash_make's parameters, taking the time
 * a real check takes. Used for unknown users so that they cost what a wrong password costs. */
void pwhash_dummy_verify(const char *password, size_t len);

#endif
