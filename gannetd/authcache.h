/* Verified-credential cache of the auth process (the idea of Dovecot's auth_cache): remembers
 * for auth_cache_ttl seconds that a password verified against a user's stored hash, so a client
 * that logs in again skips the slow hash. Only an HMAC under a random per-process key is kept,
 * never the password; only successes are kept; every entry dies when the user file changes. */
#ifndef GANNETD_AUTHCACHE_H
#define GANNETD_AUTHCACHE_H

#include <stdbool.h>
#include <stddef.h>

#include "conf.h" /* AUTH_CACHE_TTL_MAX, AUTH_CACHE_SIZE_MAX */
#include "gannet_limits.h"
#include "pwhash.h"

/* Slots searched per lookup: an entry lives in one set of this many slots, chosen by its MAC,
 * so a lookup touches a few cache lines and a full set evicts its oldest entry, never scans. */
#define AUTH_CACHE_WAYS 4

/* What the MAC covers: user NUL password NUL stored hash. */
#define AUTH_CACHE_INPUT_MAX (USERNAME_MAX + 1 + PASSWORD_MAX + 1 + PWHASH_MAX)

/* Set up an empty cache of SIZE entries kept TTL seconds, dropped whenever the file USERDB
 * changes (device, inode, size, mtime or ctime). TTL or SIZE 0 turns it off. -1 with *ERROR_R
 * (static) when the memory or the random key cannot be had; the cache is then off. */
int authcache_init(const char *userdb, long ttl, long size, const char **error_r);

/* True when the cache is on. */
bool authcache_enabled(void);

/* 1 when PASSWORD (LEN bytes) verified for USER against the hash STORED within the TTL and the
 * user file has not changed since; 0 otherwise. Safe from several threads at once. */
int authcache_lookup(const char *user, const char *password, size_t len, const char *stored);

/* Remember that PASSWORD verified for USER against STORED. Only ever call after a successful
 * verification of the account password itself. Safe from several threads at once. */
void authcache_add(const char *user, const char *password, size_t len, const char *stored);

/* Forget every entry. */
void authcache_flush(void);

/* Entries held now (for tests and the log). */
size_t authcache_count(void);

#endif
