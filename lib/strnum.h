/* Strict parsing of decimal numbers: the one helper every command argument and setting goes
 * through. */
#ifndef GANNET_STRNUM_H
#define GANNET_STRNUM_H

#include <stddef.h>
#include <stdint.h>

/* Parse S[0..LEN) as a plain decimal number: only digits, at least one, no sign, no spaces, no
 * leading zero unless the number is "0", value in [MIN, MAX]. 0 on success, -1 otherwise. */
int strnum_u64(const char *s, size_t len, uint64_t min, uint64_t max, uint64_t *out_r);

/* The same for a NUL-terminated string. */
int strnum_parse(const char *s, uint64_t min, uint64_t max, uint64_t *out_r);

#endif
