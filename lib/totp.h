/* Second factor: RFC 6238 TOTP via liboath, otpauth URIs, terminal QR codes, recovery codes. */
#ifndef GANNET_TOTP_H
#define GANNET_TOTP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#define TOTP_SECRET_LEN 20 /* RFC 4226 §4 R6: 160 bits */
#define TOTP_DIGITS     6  /* what every authenticator app shows by default */
#define TOTP_STEP       30 /* seconds; RFC 6238 §5.2 recommended time step */
#define TOTP_WINDOW     1  /* steps either side accepted for clock drift */

/* Secrets shorter than 128 bits are refused (RFC 4226 §4 R6 "MUST be at least 128 bits"). */
#define TOTP_SECRET_MIN 16
/* HMAC-SHA1 hashes a key longer than its 64-byte block first (RFC 2104 §2): longer secrets add
 * nothing, so we refuse them rather than carry them around. */
#define TOTP_SECRET_MAX 64
/* Base32 of TOTP_SECRET_MAX bytes without padding is 103 characters; with the NUL, 104. */
#define TOTP_BASE32_MAX 104

#define TOTP_RECOVERY_CODES 10 /* issued at once, as GitHub and Google do */
/* A recovery code as shown ("XXXX-XXXX-XXXX-XXXX", 19 characters) or normalised (16), with the
 * NUL, and room to spare for app passwords that share the normaliser. */
#define TOTP_RECOVERY_TEXT_MAX 32
/* 16 symbols of 5 bits: 80 bits, far beyond guessing at any login rate. */
#define TOTP_RECOVERY_SYMBOLS 16
#define TOTP_RECOVERY_GROUP   4 /* symbols between dashes */

/* An otpauth URI: the 103-character secret, two percent-encoded issuers and an account name fit;
 * QR codes of this much text (version 20 at level M) are still readable off a terminal. */
#define TOTP_URI_MAX 512
/* The longest text totp_qr_print draws. */
#define TOTP_QR_TEXT_MAX TOTP_URI_MAX
/* QR code quiet zone in modules (ISO/IEC 18004 §6.3.8 asks for 4). */
#define TOTP_QR_QUIET 4

/* A typed code or app password reaches us in one POP3 command line (RFC 2449: 255 octets with
 * CRLF), so a longer input cannot be one; totp_code_normalise refuses it. */
#define TOTP_TYPED_MAX 255

/* Fill SECRET with LEN random bytes from OpenSSL's RAND_bytes. LEN must be within
 * [TOTP_SECRET_MIN, TOTP_SECRET_MAX]; use TOTP_SECRET_LEN. 0, or -1 on a bad LEN or RNG failure. */
int totp_new_secret(unsigned char *secret, size_t len);

/* RFC 4648 §6 base32 of SECRET (1 to TOTP_SECRET_MAX bytes), upper case, no '=' padding, into
 * OUT of SIZE bytes, NUL-terminated. 0, or -1 if LEN is 0 or too large or OUT is too small. */
int totp_base32_encode(const unsigned char *secret, size_t len, char *out, size_t size);

/* Decode B32 strictly: only 'A'-'Z' and '2'-'7', no padding, spaces or lower case, a length that
 * encodes whole bytes and zero unused trailing bits (the one spelling totp_base32_encode gives).
 * At most SIZE bytes go to SECRET, their count to *LEN_R. 0, or -1 (empty, bad, too long). */
int totp_base32_decode(const char *b32, unsigned char *secret, size_t size, size_t *len_r);

/* Check CODE against SECRET (LEN bytes, TOTP_SECRET_MIN..TOTP_SECRET_MAX) at time NOW, SHA-1,
 * TOTP_STEP seconds, TOTP_WINDOW steps either side, comparing in constant time. Returns 1 valid
 * with *STEP_R = the matched time step (floor(NOW/30) + offset), 0 invalid (CODE not exactly
 * TOTP_DIGITS ASCII digits, no match, or a step <= LAST_STEP: a replay; pass -1 when no code was
 * used yet), -1 error (bad secret length, NOW < 0, LAST_STEP < -1, liboath failure). The caller
 * must store *STEP_R as the new LAST_STEP before it answers the client. */
int totp_verify(const unsigned char *secret, size_t len, const char *code, time_t now,
                int64_t last_step, int64_t *step_r);

/* Write otpauth://totp/ISSUER:ACCOUNT?secret=B32&issuer=ISSUER&algorithm=SHA1&digits=6&period=30
 * to OUT (SIZE bytes; TOTP_URI_MAX is enough for sane names), ISSUER and ACCOUNT percent-encoded
 * as RFC 3986 requires (all but ALPHA DIGIT "-._~", so ':' '@' ' ' are escaped). ISSUER and
 * ACCOUNT must be non-empty and free of control characters. 0, or -1 when invalid or it does not
 * fit. */
int totp_uri(const char *issuer, const char *account, const unsigned char *secret, size_t len,
             char *out, size_t size);

/* Draw TEXT (1 to TOTP_QR_TEXT_MAX bytes) to F as a QR code (QRcode_encodeString, level M) in
 * UTF-8 half blocks, two modules per character row, with a TOTP_QR_QUIET-module quiet zone: each
 * line is width + 2 * TOTP_QR_QUIET columns, and there are (width + 2 * TOTP_QR_QUIET + 1) / 2
 * lines. Light modules are drawn as block characters; when F is a terminal each line is wrapped
 * in ANSI colours (bright white on black) so the code reads dark-on-light whatever the terminal's
 * theme. 0, or -1 (bad TEXT, encoding or write failure). */
int totp_qr_print(FILE *f, const char *text);

/* Write a fresh recovery code to CODE (SIZE >= 20): TOTP_RECOVERY_SYMBOLS characters of the
 * 32-symbol alphabet 0-9 A-Z without I L O U (80 bits from RAND_bytes) as XXXX-XXXX-XXXX-XXXX.
 * Store only a hash of its totp_code_normalise form. 0, or -1 (SIZE too small, RNG failure). */
int totp_recovery_new(char *code, size_t size);

/* Normalise a typed recovery code or app password IN into OUT (SIZE bytes): drop '-' and ' ',
 * upper-case ASCII letters; digits stay. -1 on any other character, on an empty result, on an
 * input over TOTP_TYPED_MAX bytes or when the result does not fit OUT. No look-alike mapping:
 * 'O' stays 'O' (not in the recovery alphabet, so it simply fails to match). 0 on success. */
int totp_code_normalise(const char *in, char *out, size_t size);

/* The password+code form ("hunter2" followed by "123456"): when PW (LEN bytes) ends in
 * TOTP_DIGITS ASCII digits and is longer than that, set *PWLEN_R to LEN - TOTP_DIGITS, copy the
 * digits NUL-terminated to CODE and return 1. Else 0, and CODE and *PWLEN_R are untouched. */
int totp_split(const char *pw, size_t len, size_t *pwlen_r, char code[TOTP_DIGITS + 1]);

#endif
