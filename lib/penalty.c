/* Brute-force penalty table: per-address and per-account failure counters with bounded memory. */
#include "penalty.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "siphash.h"

_Static_assert(PENALTY_IP_KEY_MAX <= USERNAME_MAX + 1, "an address key fits penalty_entry.key");

/* Binary address key: a family byte, then 4 (IPv4) or 8 (IPv6 /64) address bytes. */
#define IP_BIN_MAX 9

/* Address and account entries share the node type; KEY holds the binary address or the name. */
struct pen_node {
	struct pen_node *hnext;         /* bucket chain */
	struct pen_node *older, *newer; /* recency list, by last failure recorded */
	time_t last_failure;
	long failures;
	uint16_t keylen;
	unsigned char key[];
};

struct pen_table {
	struct pen_node **buckets; /* max buckets: chains average at most one node */
	size_t mask;
	size_t count, max;
	struct pen_node *oldest, *newest;
};

struct penalty {
	struct penalty_conf conf;
	uint64_t k0, k1;
	struct pen_table ips, users;
	/* Sorting room for penalty_list, allocated up front so listing never fails. */
	struct pen_node **scratch;
	/* The latest time any call passed in, so penalty_clear can drop expired entries first. */
	time_t last_now;
};

_Static_assert(USERNAME_MAX <= UINT16_MAX, "keylen is 16 bits");

/* Buckets are chosen by SipHash-2-4 (siphash.h) under a per-process key: an attacker who chooses
 * the user names or the /64s cannot aim them at one bucket. */

/* ---- address keys ---- */

/* IP text to binary key; -1 when not an address. */
static int ip_bin(const char *ip, unsigned char *bin, size_t *len_r)
{
	char host[INET6_ADDRSTRLEN];
	unsigned char a[16];
	size_t len;
	bool slash64 = false;

	if (ip == NULL)
		return -1;
	len = strnlen(ip, sizeof(host) + 3);
	if (len >= 3 && memcmp(ip + len - 3, "/64", 3) == 0) {
		slash64 = true;
		len -= 3;
	}
	if (len == 0 || len >= sizeof(host))
		return -1;
	memcpy(host, ip, len);
	host[len] = '\0';
	if (!slash64 && inet_pton(AF_INET, host, a) == 1) {
		bin[0] = 4;
		memcpy(bin + 1, a, 4);
		*len_r = 5;
		return 0;
	}
	if (inet_pton(AF_INET6, host, a) != 1)
		return -1;
	if (IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)a)) {
		/* A dual-stack listener shows IPv4 clients as ::ffff:a.b.c.d; one client, one
		 * counter. "::ffff:a.b.c.d/64" names no sensible network. */
		if (slash64)
			return -1;
		bin[0] = 4;
		memcpy(bin + 1, a + 12, 4);
		*len_r = 5;
		return 0;
	}
	/* One customer usually gets a whole /64 (RFC 6177), so counting single IPv6 addresses would
	 * hand an attacker 2^64 fresh counters. */
	bin[0] = 6;
	memcpy(bin + 1, a, 8);
	*len_r = 9;
	return 0;
}

static int ip_text(const unsigned char *bin, size_t len, char *out, size_t size)
{
	unsigned char a[16] = {0};
	size_t n;

	if (size < PENALTY_IP_KEY_MAX)
		return -1;
	if (bin[0] == 4 && len == 5)
		return inet_ntop(AF_INET, bin + 1, out, (socklen_t)size) != NULL ? 0 : -1;
	if (bin[0] != 6 || len != 9)
		return -1;
	memcpy(a, bin + 1, 8);
	if (inet_ntop(AF_INET6, a, out, (socklen_t)size) == NULL)
		return -1;
	n = strlen(out);
	memcpy(out + n, "/64", 4);
	return 0;
}

int penalty_ip_key(const char *ip, char *key_r, size_t size)
{
	unsigned char bin[IP_BIN_MAX];
	size_t len;

	if (ip_bin(ip, bin, &len) == -1)
		return -1;
	if (key_r == NULL)
		return 0;
	return ip_text(bin, len, key_r, size);
}

/* ---- tables ---- */

static int table_init(struct pen_table *t, size_t max)
{
	memset(t, 0, sizeof(*t));
	t->buckets = calloc(max, sizeof(*t->buckets));
	if (t->buckets == NULL)
		return -1;
	t->mask = max - 1;
	t->max = max;
	return 0;
}

static struct pen_node **table_find(struct penalty *p, struct pen_table *t,
                                    const unsigned char *key, size_t len)
{
	struct pen_node **np = &t->buckets[siphash(p->k0, p->k1, key, len, 2, 4) & t->mask];

	while (*np != NULL && ((*np)->keylen != len || memcmp((*np)->key, key, len) != 0))
		np = &(*np)->hnext;
	return np;
}

static void list_unlink(struct pen_table *t, struct pen_node *n)
{
	if (n->older != NULL)
		n->older->newer = n->newer;
	else
		t->oldest = n->newer;
	if (n->newer != NULL)
		n->newer->older = n->older;
	else
		t->newest = n->older;
	n->older = n->newer = NULL;
}

static void list_append(struct pen_table *t, struct pen_node *n)
{
	n->older = t->newest;
	n->newer = NULL;
	if (t->newest != NULL)
		t->newest->newer = n;
	else
		t->oldest = n;
	t->newest = n;
}

static void table_remove(struct penalty *p, struct pen_table *t, struct pen_node *n)
{
	struct pen_node **np = table_find(p, t, n->key, n->keylen);

	*np = n->hnext;
	list_unlink(t, n);
	t->count--;
	free(n);
}

/* Empty T in time proportional to its entries, not its buckets. */
static size_t table_clear(struct penalty *p, struct pen_table *t)
{
	size_t removed = t->count;
	struct pen_node *n = t->oldest;

	while (n != NULL) {
		struct pen_node *next = n->newer;

		t->buckets[siphash(p->k0, p->k1, n->key, n->keylen, 2, 4) & t->mask] = NULL;
		free(n);
		n = next;
	}
	t->count = 0;
	t->oldest = t->newest = NULL;
	return removed;
}

static void table_free(struct penalty *p, struct pen_table *t)
{
	if (t->buckets != NULL)
		table_clear(p, t);
	free(t->buckets);
	t->buckets = NULL;
}

/* Seconds since N's last failure; a clock stepped back counts as no time passed, so a block is
 * never longer than block_time. */
static time_t node_age(const struct pen_node *n, time_t now)
{
	return now > n->last_failure ? now - n->last_failure : 0;
}

static bool node_live(const struct penalty *p, const struct pen_node *n, time_t now)
{
	return node_age(n, now) < p->conf.block_time;
}

static void note_time(struct penalty *p, time_t now)
{
	if (now > p->last_now)
		p->last_now = now;
}

/* Drop expired entries from the old end. The list is in the order failures were recorded, which is
 * time order unless the clock steps back; then this stops early and the lookups' own expiry check
 * still gives the right answers. */
static void table_prune(struct penalty *p, struct pen_table *t, time_t now)
{
	while (t->oldest != NULL && !node_live(p, t->oldest, now))
		table_remove(p, t, t->oldest);
}

/* Count one failure for KEY; the new count, or -1 when no entry could be had. */
static long table_fail(struct penalty *p, struct pen_table *t, const unsigned char *key, size_t len,
                       time_t now)
{
	struct pen_node **np = table_find(p, t, key, len);
	struct pen_node *n = *np;

	if (n != NULL) {
		if (!node_live(p, n, now))
			n->failures = 0;
		list_unlink(t, n);
	} else {
		/* Full: the entry whose last failure is oldest goes. An attacker with more
		 * addresses than the table holds can push a blocked one out this way, but every
		 * one of its addresses still pays the delays, and memory stays bounded. */
		if (t->count >= t->max) {
			table_remove(p, t, t->oldest);
			np = table_find(p, t, key, len);
		}
		n = malloc(sizeof(*n) + len);
		if (n == NULL)
			return -1;
		memset(n, 0, sizeof(*n));
		memcpy(n->key, key, len);
		n->keylen = (uint16_t)len;
		n->hnext = NULL;
		*np = n;
		t->count++;
	}
	if (n->failures < PENALTY_FAILURES_MAX)
		n->failures++;
	n->last_failure = now;
	list_append(t, n);
	return n->failures;
}

/* ---- the API ---- */

static long clamp(long v, long lo, long hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

void penalty_set_conf(struct penalty *p, const struct penalty_conf *c)
{
	p->conf.base_delay = clamp(c->base_delay, 0, PENALTY_DELAY_LIMIT);
	p->conf.max_delay = clamp(c->max_delay, 0, PENALTY_DELAY_LIMIT);
	p->conf.ip_max_failures = clamp(c->ip_max_failures, 1, PENALTY_FAILURES_MAX);
	p->conf.block_time = clamp(c->block_time, 0, PENALTY_BLOCK_TIME_LIMIT);
}

struct penalty *penalty_new(const struct penalty_conf *c)
{
	struct penalty *p = calloc(1, sizeof(*p));
	unsigned char key[16];
	size_t scratch = PENALTY_IPS_MAX > PENALTY_USERS_MAX ? PENALTY_IPS_MAX : PENALTY_USERS_MAX;

	_Static_assert((PENALTY_IPS_MAX & (PENALTY_IPS_MAX - 1)) == 0, "power of two");
	_Static_assert((PENALTY_USERS_MAX & (PENALTY_USERS_MAX - 1)) == 0, "power of two");
	if (p == NULL)
		return NULL;
	if (table_init(&p->ips, PENALTY_IPS_MAX) == -1 ||
	    table_init(&p->users, PENALTY_USERS_MAX) == -1 ||
	    (p->scratch = calloc(scratch, sizeof(*p->scratch))) == NULL) {
		penalty_free(p);
		errno = ENOMEM;
		return NULL;
	}
	if (RAND_bytes(key, sizeof(key)) != 1) {
		penalty_free(p);
		errno = EIO;
		return NULL;
	}
	memcpy(&p->k0, key, sizeof(p->k0)); /* random bytes: their order does not matter */
	memcpy(&p->k1, key + 8, sizeof(p->k1));
	explicit_bzero(key, sizeof(key));
	penalty_set_conf(p, c);
	return p;
}

void penalty_free(struct penalty *p)
{
	if (p == NULL)
		return;
	table_free(p, &p->ips);
	table_free(p, &p->users);
	free(p->scratch);
	explicit_bzero(p, sizeof(*p));
	free(p);
}

int penalty_blocked(struct penalty *p, const char *ip, time_t now, long *retry_after_r)
{
	unsigned char bin[IP_BIN_MAX];
	struct pen_node *n;
	size_t len;

	if (retry_after_r != NULL)
		*retry_after_r = 0;
	note_time(p, now);
	if (ip_bin(ip, bin, &len) == -1)
		return 0;
	n = *table_find(p, &p->ips, bin, len);
	if (n == NULL || !node_live(p, n, now) || n->failures < p->conf.ip_max_failures)
		return 0;
	if (retry_after_r != NULL)
		*retry_after_r = (long)(p->conf.block_time - node_age(n, now));
	return 1;
}

/* min(base * 2^(n-1), max) seconds, in milliseconds. */
static long delay_ms(const struct penalty_conf *c, long n)
{
	long d = c->base_delay;

	/* Both are at most PENALTY_DELAY_LIMIT, so d stays below twice that. */
	for (long i = 1; i < n && d > 0 && d < c->max_delay; i++)
		d *= 2;
	if (d > c->max_delay)
		d = c->max_delay;
	return d * 1000;
}

long penalty_failure(struct penalty *p, const char *ip, const char *user, time_t now)
{
	unsigned char bin[IP_BIN_MAX];
	size_t len;
	long n = 1, r;

	note_time(p, now);
	table_prune(p, &p->ips, now);
	table_prune(p, &p->users, now);
	if (ip_bin(ip, bin, &len) == 0) {
		r = table_fail(p, &p->ips, bin, len, now);
		if (r == -1)
			return p->conf.max_delay * 1000;
		if (r > n)
			n = r;
	}
	/* A name longer than any valid account protects no account; the address still counts. */
	if (user != NULL && user[0] != '\0' &&
	    (len = strnlen(user, USERNAME_MAX + 1)) <= USERNAME_MAX) {
		r = table_fail(p, &p->users, (const unsigned char *)user, len, now);
		if (r == -1)
			return p->conf.max_delay * 1000;
		if (r > n)
			n = r;
	}
	return delay_ms(&p->conf, n);
}

void penalty_success(struct penalty *p, const char *ip, const char *user, time_t now)
{
	unsigned char bin[IP_BIN_MAX];
	struct pen_node *n;
	size_t len;

	note_time(p, now);
	if (ip_bin(ip, bin, &len) == -1)
		return;
	n = *table_find(p, &p->ips, bin, len);
	if (n != NULL)
		table_remove(p, &p->ips, n);
}

static int node_cmp(const void *a, const void *b)
{
	const struct pen_node *x = *(struct pen_node *const *)a;
	const struct pen_node *y = *(struct pen_node *const *)b;
	size_t len;
	int c;

	if (x->failures != y->failures)
		return x->failures > y->failures ? -1 : 1;
	if (x->last_failure != y->last_failure)
		return x->last_failure > y->last_failure ? -1 : 1;
	len = x->keylen < y->keylen ? x->keylen : y->keylen;
	c = memcmp(x->key, y->key, len);
	if (c != 0)
		return c;
	return x->keylen < y->keylen ? -1 : x->keylen > y->keylen ? 1 : 0;
}

static size_t list_table(struct penalty *p, struct pen_table *t, bool is_ip, time_t now,
                         struct penalty_entry *out, size_t max)
{
	size_t live = 0, done = 0;

	for (struct pen_node *n = t->newest; n != NULL; n = n->older)
		if (node_live(p, n, now))
			p->scratch[live++] = n;
	qsort(p->scratch, live, sizeof(*p->scratch), node_cmp);
	for (size_t i = 0; i < live && done < max; i++) {
		struct pen_node *n = p->scratch[i];
		struct penalty_entry *e = &out[done];

		memset(e, 0, sizeof(*e));
		e->is_ip = is_ip;
		if (is_ip) {
			if (ip_text(n->key, n->keylen, e->key, sizeof(e->key)) == -1)
				continue;
			if (n->failures >= p->conf.ip_max_failures)
				e->blocked_until = now + (p->conf.block_time - node_age(n, now));
		} else {
			memcpy(e->key, n->key, n->keylen);
			e->key[n->keylen] = '\0';
		}
		e->failures = n->failures;
		e->last_failure = n->last_failure;
		done++;
	}
	return done;
}

size_t penalty_list(struct penalty *p, time_t now, struct penalty_entry *out, size_t max)
{
	size_t done;

	note_time(p, now);
	table_prune(p, &p->ips, now);
	table_prune(p, &p->users, now);
	if (max == 0)
		return 0;
	done = list_table(p, &p->ips, true, now, out, max);
	if (done < max)
		done += list_table(p, &p->users, false, now, out + done, max - done);
	return done;
}

size_t penalty_clear(struct penalty *p, const char *what)
{
	unsigned char bin[IP_BIN_MAX];
	struct pen_table *t;
	const unsigned char *key;
	struct pen_node *n;
	size_t len;

	table_prune(p, &p->ips, p->last_now);
	table_prune(p, &p->users, p->last_now);
	if (what == NULL)
		return table_clear(p, &p->ips) + table_clear(p, &p->users);
	if (ip_bin(what, bin, &len) == 0) {
		t = &p->ips;
		key = bin;
	} else {
		len = strnlen(what, USERNAME_MAX + 1);
		if (len == 0 || len > USERNAME_MAX)
			return 0;
		t = &p->users;
		key = (const unsigned char *)what;
	}
	n = *table_find(p, t, key, len);
	if (n == NULL)
		return 0;
	table_remove(p, t, n);
	return 1;
}
