/* SCRAM verifiers (RFC 5802, RFC 7677) stored in the user file: making them from a password and
 * checking the stored text. The text is "ITER,SALT_B64,STOREDKEY_HEX,SERVERKEY_HEX", the form
 * GNU SASL takes as GSASL_SCRAM_ITER, GSASL_SCRAM_SALT, GSASL_SCRAM_STOREDKEY and
 * GSASL_SCRAM_SERVERKEY. */
#ifndef GANNET_SCRAM_H
#define GANNET_SCRAM_H

#include <stddef.h>

enum scram_hash { SCRAM_SHA1, SCRAM_SHA256 };

/* RFC 7677 §4 and RFC 5802 §5.1: 4096 is the smallest iteration count a SCRAM-SHA-256 server may
 * use, and every client accepts it. Raising it slows an attacker who holds the user file, but
 * every login costs the client the same PBKDF2 work. */
#define SCRAM_ITER_DEFAULT 4096

/* The same RFC minimum: fewer would make a stolen verifier cheaper to attack than the RFC
 * allows. */
#define SCRAM_ITER_MIN 4096

/* The client runs PBKDF2 with this count at every login: a million HMACs (above OWASP's 600,000
 * for PBKDF2-HMAC-SHA256) take about a second on a phone; more would make clients time out, and
 * a hostile user file could otherwise make gannetctl or a client spin for minutes. */
#define SCRAM_ITER_MAX 1000000

/* Salt length scram_make uses, in bytes: 128 bits, as NIST SP 800-132 asks for PBKDF2. */
#define SCRAM_SALT_LEN 16

/* Salt lengths scram_parse accepts, in bytes. Below 64 bits a salt no longer keeps an attacker
 * from precomputing one table for many users (NIST SP 800-132 first allowed 64 bits; RFC 5802's
 * example uses 12 bytes). 45 is the most whose base64 (60 characters) fits in struct
 * scram_secret's salt_b64[64] with its NUL. */
#define SCRAM_SALT_MIN 8
#define SCRAM_SALT_MAX 45

/* Longest verifier text, NUL excluded: "1000000," + 60 + "," + 64 + "," + 64 = 198 bytes fit,
 * with room for a wider form later without changing the user-file entry size. */
#define SCRAM_FIELD_MAX 256

/* Bytes of the longest hash output (SHA-256). */
#define SCRAM_HASH_MAX 32

struct scram_secret {
	unsigned iter;
	char salt_b64[64];   /* base64 of the salt, canonical, padded */
	char stored_hex[65]; /* StoredKey, lowercase hex (40 digits for SHA-1, 64 for SHA-256) */
	char server_hex[65]; /* ServerKey, lowercase hex */
};

/* Verifier text for PASSWORD (LEN bytes, no NUL, at most PASSWORD_MAX; SASLprep'ed with
 * gsasl_saslprep as a stored string first, as clients do), with a random SCRAM_SALT_LEN-byte salt
 * from OpenSSL RAND_bytes and ITER iterations: "ITER,SALT_B64,STOREDKEY_HEX,SERVERKEY_HEX" into
 * FIELD (SIZE > SCRAM_FIELD_MAX is always enough). 0, or -1 with a static *ERROR_R. */
int scram_make(enum scram_hash h, const char *password, size_t len, unsigned iter, char *field,
               size_t size, const char **error_r);

/* scram_make with the given salt (SALT_LEN bytes, SCRAM_SALT_MIN..SCRAM_SALT_MAX) instead of a
 * random one: for tests against published vectors. 0, or -1 with a static *ERROR_R. */
int scram_make_salt(enum scram_hash h, const char *password, size_t len, unsigned iter,
                    const unsigned char *salt, size_t salt_len, char *field, size_t size,
                    const char **error_r);

/* Parse and check a verifier text: iteration count a strict decimal in
 * SCRAM_ITER_MIN..SCRAM_ITER_MAX, salt canonical padded base64 of SCRAM_SALT_MIN..SCRAM_SALT_MAX
 * bytes, keys lowercase hex of exactly the hash length (20 bytes SHA-1, 32 SHA-256), nothing
 * else. 0 with OUT filled, or -1 with a static *ERROR_R and OUT zeroed. */
int scram_parse(enum scram_hash h, const char *field, struct scram_secret *out,
                const char **error_r);

#endif
