/* OAuth 2.0 bearer tokens for SASL OAUTHBEARER (RFC 7628) and XOAUTH2: JWT validation against a
 * JWKS file, and the client message parsers. */
#ifndef GANNET_OAUTH_H
#define GANNET_OAUTH_H

#include <stddef.h>
#include <time.h>

/* Longest bearer token accepted, in octets. Access tokens from the common identity providers are
 * 1 to 2 kB; with many group claims they reach about 5 kB. 8 kB leaves room for those, and the
 * whole OAUTHBEARER message (OAUTH_SASL_MAX), base64-encoded, still fits one AUTH line
 * (POP3_AUTH_LINE_MAX, 16384: 4/3 * 10240 = 13654). */
#define OAUTH_TOKEN_MAX 8192

/* Keys in one JWKS file: providers publish two or three (current, next, previous); 32 covers a
 * hand-merged file of several providers and bounds the linear kid search. */
#define OAUTH_KEYS_MAX 32

/* Size of the JWKS file: a 4096-bit RSA key is about 800 octets of JSON, so 32 keys with their
 * optional x5c certificate chains fit in 64 kB; anything larger is not a key set. */
#define OAUTH_JWKS_FILE_MAX 65536

/* Seconds of clock skew accepted on exp/nbf/iat, between us and the token issuer. */
#define OAUTH_LEEWAY 60

/* Longest "kid": providers use thumbprints (43), UUIDs (36) or short names; 128 is generous and
 * keeps a hostile kid out of long log lines. */
#define OAUTH_KID_MAX 128

/* Longest OAUTHBEARER / XOAUTH2 client message: the token plus gs2 header, authzid, host and port
 * (each well under 1 kB) and the separators. */
#define OAUTH_SASL_MAX (OAUTH_TOKEN_MAX + 2048)

/* key=value pairs in one OAUTHBEARER message: RFC 7628 defines three (auth, host, port); a few
 * more unknown ones are ignored, beyond this the message is refused. */
#define OAUTH_KVPAIRS_MAX 16

/* RSA moduli accepted in the JWKS: 2048 bits is the floor of NIST SP 800-57 and RFC 7518 §3.3;
 * above 8192 a verification costs tens of milliseconds for no gain, so such a key is refused. */
#define OAUTH_RSA_BITS_MIN 2048
#define OAUTH_RSA_BITS_MAX 8192

/* RSA public exponent "e" in octets: real keys use 65537 (3 octets); 8 octets (64 bits) is what
 * OpenSSL accepts for large moduli. */
#define OAUTH_RSA_E_MAX 8

/* Validation settings. NULL or "" for issuer/audience: not checked (set both in production).
 * user_claim NULL or "": "sub". */
struct oauth_conf {
	const char *issuer;
	const char *audience;
	const char *user_claim;
};

/* An immutable set of verification keys, loaded once per configuration generation. */
struct oauth_keys;

/* Load the JWKS (RFC 7517) at PATH: RSA keys of OAUTH_RSA_BITS_MIN..MAX bits and EC keys on
 * P-256/P-384, converted to PEM. A weaker RSA key, a symmetric ("oct") key, a bad member or a
 * duplicate kid refuses the whole file; keys we cannot use (use "enc", other curves or types,
 * other algs) are skipped. NULL with *ERROR_R (static or thread-local) on failure. */
struct oauth_keys *oauth_keys_load(const char *path, const char **error_r);

/* Free a key set (NULL is fine). */
void oauth_keys_free(struct oauth_keys *k);

/* Validate the compact JWT JWT (LEN bytes) at time NOW. 1 valid: the user claim copied to
 * USER_OUT (SIZE bytes, NUL-terminated); 0 invalid with *REASON_R a short static token for the
 * log ("malformed", "alg_not_allowed", "unknown_kid", "bad_signature", "expired",
 * "not_yet_valid", "wrong_issuer", "wrong_audience", "no_user_claim", "user_claim_too_long");
 * -1 internal error (out of memory), *REASON_R "internal"; "ok" on success. Allowed:
 * RS256/384/512, ES256 (P-256), ES384 (P-384); "none" and HS* are refused before libjwt sees the
 * token. The header "kid" selects the key; a file of one key also serves tokens without kid (and
 * any kid if that key has none). "crit", or a "typ" other than "JWT" (libjwt 1.10 refuses
 * RFC 9068 "at+jwt"), is malformed. exp is required. Thread-safe: K is only read. */
int oauth_validate(const struct oauth_keys *k, const struct oauth_conf *c, const char *jwt,
                   size_t len, time_t now, char *user_out, size_t size, const char **reason_r);

/* Parse an RFC 7628 §3.1 client response: "n,a=AUTHZID," or "n,," then \x01-separated
 * key=value pairs with "auth=Bearer TOKEN", ending "\x01\x01". AUTHZID ("=2C"/"=3D" decoded, may
 * be empty) and TOKEN are copied NUL-terminated. 0, or -1 with *ERROR_R (static). */
int oauth_parse_oauthbearer(const char *msg, size_t len, char *authzid, size_t asize, char *token,
                            size_t tsize, const char **error_r);

/* Parse an XOAUTH2 response "user=USER\x01auth=Bearer TOKEN\x01\x01". 0, or -1 with *ERROR_R. */
int oauth_parse_xoauth2(const char *msg, size_t len, char *user, size_t usize, char *token,
                        size_t tsize, const char **error_r);

/* Write the RFC 7628 §3.2.2 failure JSON to OUT: status, schemes, scope, and
 * openid-configuration when C->issuer is set. 0, or -1 when it does not fit SIZE. */
int oauth_error_json(const struct oauth_conf *c, char *out, size_t size);

#endif
