/* Brute-force defence: failed logins counted per client address and per account, growing delays,
 * address blocks. Kept by the auth process; single-threaded; time is always passed in. */
#ifndef GANNET_PENALTY_H
#define GANNET_PENALTY_H

#include <stdbool.h>
#include <stddef.h>
#include <netinet/in.h>
#include <time.h>

#include "gannet_limits.h"

/* Addresses (IPv4, or IPv6 /64) tracked at once. An entry takes about 64 bytes plus 8 for its
 * bucket, so a full table is about 5 MiB; 65536 is more than the distinct sources failing within
 * one block_time on any server we expect, and an attacker who has more addresses than this can
 * only push out the quietest entry (see penalty.c), never make us allocate more. */
#define PENALTY_IPS_MAX 65536
/* Accounts tracked at once. An entry is at most about 300 bytes (the name is at most USERNAME_MAX),
 * so a full table stays under 21 MiB; the same count as addresses because each failure touches
 * one of each. */
#define PENALTY_USERS_MAX 65536

/* Failure counters saturate here: the delay reaches any possible cap within 32 doublings and the
 * block needs at most the configured maximum (100000), so a bigger count only risks overflow. */
#define PENALTY_FAILURES_MAX 1000000L
/* Delays (seconds) are clamped to this whatever the caller passes: the configuration allows 600,
 * and the bound keeps the millisecond arithmetic far from overflow. */
#define PENALTY_DELAY_LIMIT 3600L
/* block_time (seconds) is clamped to this: the configuration allows one day; a week bounds how
 * long a stale entry can keep an address out if the setting is ever raised. */
#define PENALTY_BLOCK_TIME_LIMIT (7L * 86400)
/* Text of an address key, NUL included: the longest IPv6 text (INET6_ADDRSTRLEN, NUL included)
 * plus "/64". */
#define PENALTY_IP_KEY_MAX (INET6_ADDRSTRLEN + 3)

struct penalty_conf {
	long base_delay;      /* s: delay of the first failed reply; doubles with each failure */
	long max_delay;       /* s: cap on the delay */
	long ip_max_failures; /* failures of one address (IPv6: /64) before it is refused */
	long block_time;      /* s: how long it is refused; failures are forgotten after as long */
};

struct penalty;

/* A new, empty table with its own random hash key. NULL on ENOMEM (or EIO when no random key can
 * be had). C is copied (see penalty_set_conf for the bounds applied). */
struct penalty *penalty_new(const struct penalty_conf *c);
/* Take new settings (reload); the entries stay. Negative values count as 0, ip_max_failures as at
 * least 1, delays and block_time are clamped to the limits above. The new block_time applies to
 * the existing entries at once. */
void penalty_set_conf(struct penalty *p, const struct penalty_conf *c);
/* Free P and every entry (NULL is fine). */
void penalty_free(struct penalty *p);

/* Parse an IP text into the counting key (IPv4, or the IPv6 /64); -1 when not an address.
 * Accepts "192.0.2.1", "2001:db8:1:2::5", "2001:db8:1:2::/64", "::ffff:192.0.2.1" (= the IPv4
 * address). On 0 writes the key text ("192.0.2.1", "2001:db8:1:2::/64") into KEY_R, which must
 * hold PENALTY_IP_KEY_MAX bytes (SIZE smaller: -1). KEY_R may be NULL to only check. */
int penalty_ip_key(const char *ip, char *key_r, size_t size);

/* Before verifying: 1 when IP is refused (sets *retry_after_r to seconds left), else 0. An
   unparsable IP is never refused (returns 0). RETRY_AFTER_R may be NULL; it is set to 0 when not
   refused. */
int penalty_blocked(struct penalty *p, const char *ip, time_t now, long *retry_after_r);
/* Record a failure for IP and USER (USER may be NULL or "" when no user name was given, e.g. a bad
   SASL message). Returns the delay in milliseconds to wait before sending the failed reply:
   min(base * 2^(n-1), max) where n = max(failures of the IP, failures of the account) within the
   window (failures older than block_time seconds after the last one are forgotten). An unparsable
   IP or a USER longer than USERNAME_MAX is not counted; when an entry cannot be stored (no memory)
   the delay is max_delay. */
long penalty_failure(struct penalty *p, const char *ip, const char *user, time_t now);
/* A successful login: forget IP's failures (the account's stay, they expire on their own). */
void penalty_success(struct penalty *p, const char *ip, const char *user, time_t now);

struct penalty_entry {
	bool is_ip;
	char key[USERNAME_MAX + 1]; /* "192.0.2.1", "2001:db8:1:2::/64" or the user */
	long failures;
	time_t last_failure;
	time_t blocked_until; /* 0 none (always 0 for accounts: they are never refused) */
};

/* Fill OUT with up to MAX live entries (expired ones skipped), IPs first, most failures first
 * (then the most recent failure first, then by key). Count. */
size_t penalty_list(struct penalty *p, time_t now, struct penalty_entry *out, size_t max);
/* Clear entries: WHAT NULL = all; an IP or IPv6/64 text = that key; otherwise a user name. Count
 * removed (entries that had already expired at the last time seen are dropped first and not
 * counted, so the count matches what penalty_list showed). */
size_t penalty_clear(struct penalty *p, const char *what);

#endif
