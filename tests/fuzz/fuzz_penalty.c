/* libFuzzer target for lib/penalty.c: random operation sequences against a simple model, and raw
 * bytes as addresses and user names. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "penalty.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

/* Address texts and the model key each one counts under (-1: not an address). */
static const struct {
	const char *text;
	int key;
} ips[] = {
    {"192.0.2.1", 0},
    {"::ffff:192.0.2.1", 0},
    {"192.0.2.2", 1},
    {"2001:db8::1", 2},
    {"2001:db8::ffff:1", 2},
    {"2001:db8::/64", 2},
    {"2001:db8:0:1::1", 3},
    {"::1", 4},
    {"garbage", -1},
    {"", -1},
    {NULL, -1},
    {"192.0.2.1/64", -1},
};
#define NIPS    (sizeof(ips) / sizeof(ips[0]))
#define NIPKEYS 5
static const char *const users[] = {"alice", "bob", "Alice", "", NULL};
#define NUSERS    (sizeof(users) / sizeof(users[0]))
#define NUSERKEYS 3

struct model_entry {
	long failures;
	time_t last;
};

struct model {
	struct penalty_conf conf;
	struct model_entry ip[NIPKEYS], user[NUSERKEYS];
	time_t seen; /* the latest time passed to the table: penalty_clear expires by it */
};

static bool live(const struct model *m, const struct model_entry *e, time_t now)
{
	return e->failures > 0 && now - e->last < m->conf.block_time;
}

/* What the table drops for good when it prunes (penalty_failure, penalty_list, penalty_clear):
 * every entry expired at NOW. One not yet dropped can live again if block_time grows. */
static void prune(struct model *m, time_t now)
{
	for (size_t i = 0; i < NIPKEYS; i++)
		if (!live(m, &m->ip[i], now))
			m->ip[i].failures = 0;
	for (size_t i = 0; i < NUSERKEYS; i++)
		if (!live(m, &m->user[i], now))
			m->user[i].failures = 0;
}

static long fail(const struct model *m, struct model_entry *e, time_t now)
{
	if (!live(m, e, now))
		e->failures = 0;
	e->failures++;
	e->last = now;
	return e->failures;
}

static long delay(const struct model *m, long n)
{
	long d = m->conf.base_delay;

	for (long i = 1; i < n && d < m->conf.max_delay; i++)
		d *= 2;
	return (d < m->conf.max_delay ? d : m->conf.max_delay) * 1000;
}

static void set_conf(struct model *m, struct penalty *p, const uint8_t *b)
{
	m->conf.base_delay = b[0] % 8;
	m->conf.max_delay = b[1] % 64;
	m->conf.ip_max_failures = 1 + b[2] % 6;
	m->conf.block_time = b[3] % 100;
	penalty_set_conf(p, &m->conf);
}

static size_t clear_model(struct model_entry *e, size_t n, const struct model *m, time_t now)
{
	size_t removed = 0;

	for (size_t i = 0; i < n; i++) {
		if (live(m, &e[i], now))
			removed++;
		e[i].failures = 0;
	}
	return removed;
}

/* The clock keeps going across inputs: the reused table remembers the latest time it saw. */
static time_t clock_now = 1700000000;

/* One table for every input (a new one costs megabytes of buckets); emptied between inputs. */
static struct penalty *table(const struct penalty_conf *c)
{
	static struct penalty *p;

	if (p == NULL) {
		p = penalty_new(c);
		CHECK(p != NULL);
	}
	penalty_clear(p, NULL);
	penalty_set_conf(p, c);
	return p;
}

static void run_model(const uint8_t *data, size_t size)
{
	static struct penalty_entry out[NIPKEYS + NUSERKEYS + 1];
	struct model m;
	struct penalty *p;
	time_t now = clock_now;
	uint8_t init[4] = {2, 30, 3, 50};

	memset(&m, 0, sizeof(m));
	m.seen = now - 1;
	p = table(&m.conf);
	set_conf(&m, p, init);
	/* Four bytes an operation: op, time step, two arguments. Time never goes back here (the
	 * unit tests cover that), so every stored entry's liveness is exact. */
	for (size_t pos = 0; pos + 4 <= size; pos += 4) {
		const uint8_t *b = data + pos;
		size_t ii = b[2] % NIPS, ui = b[3] % NUSERS;
		int ik = ips[ii].key, uk = ui < NUSERKEYS ? (int)ui : -1;
		long retry = -1, n = 1, r;
		size_t cnt, want;

		now += b[1] % 32;
		if (b[0] % 6 <= 3)
			m.seen = now;
		switch (b[0] % 6) {
		case 0:
			prune(&m, now);
			if (ik >= 0 && (r = fail(&m, &m.ip[ik], now)) > n)
				n = r;
			if (uk >= 0 && (r = fail(&m, &m.user[uk], now)) > n)
				n = r;
			CHECK(penalty_failure(p, ips[ii].text, users[ui], now) == delay(&m, n));
			break;
		case 1:
			penalty_success(p, ips[ii].text, users[ui], now);
			if (ik >= 0)
				m.ip[ik].failures = 0;
			break;
		case 2: {
			bool want_blocked = ik >= 0 && live(&m, &m.ip[ik], now) &&
			                    m.ip[ik].failures >= m.conf.ip_max_failures;

			CHECK(penalty_blocked(p, ips[ii].text, now, &retry) == want_blocked);
			CHECK(retry ==
			      (want_blocked ? m.conf.block_time - (now - m.ip[ik].last) : 0));
			break;
		}
		case 3:
			prune(&m, now);
			cnt = penalty_list(p, now, out, b[2] % (NIPKEYS + NUSERKEYS + 1));
			want = 0;
			for (size_t i = 0; i < NIPKEYS; i++)
				want += live(&m, &m.ip[i], now);
			for (size_t i = 0; i < NUSERKEYS; i++)
				want += live(&m, &m.user[i], now);
			CHECK(cnt == (want < b[2] % (NIPKEYS + NUSERKEYS + 1)
			                  ? want
			                  : b[2] % (NIPKEYS + NUSERKEYS + 1)));
			for (size_t i = 0; i < cnt; i++) {
				CHECK(out[i].failures > 0);
				CHECK(memchr(out[i].key, '\0', sizeof(out[i].key)) != NULL);
				CHECK(i == 0 || out[i - 1].is_ip > out[i].is_ip ||
				      (out[i - 1].is_ip == out[i].is_ip &&
				       out[i - 1].failures >= out[i].failures));
				CHECK(out[i].is_ip || out[i].blocked_until == 0);
			}
			break;
		case 4:
			prune(&m, m.seen);
			if (b[3] & 1) {
				cnt = penalty_clear(p, ips[ii].text);
				want = 0;
				if (ik >= 0)
					want = clear_model(&m.ip[ik], 1, &m, m.seen);
				else if (ips[ii].text == NULL)
					want = clear_model(m.ip, NIPKEYS, &m, m.seen) +
					       clear_model(m.user, NUSERKEYS, &m, m.seen);
				else
					want = 0; /* a user name nobody has */
			} else {
				cnt = penalty_clear(p, users[ui]);
				if (users[ui] == NULL)
					want = clear_model(m.ip, NIPKEYS, &m, m.seen) +
					       clear_model(m.user, NUSERKEYS, &m, m.seen);
				else
					want =
					    uk >= 0 ? clear_model(&m.user[uk], 1, &m, m.seen) : 0;
			}
			CHECK(cnt == want);
			break;
		default:
			set_conf(&m, p, b);
			break;
		}
	}
	clock_now = now + 1;
}

/* Raw bytes as the address and the user: nothing may crash, and the delay stays in bounds. */
static void run_raw(const uint8_t *data, size_t size)
{
	static struct penalty_entry out[4];
	struct penalty_conf c = {2, 30, 3, 900};
	struct penalty *p = table(&c);
	char ip[64], user[USERNAME_MAX + 8];
	size_t split = size / 2, ipn = split < sizeof(ip) - 1 ? split : sizeof(ip) - 1;
	size_t un = size - split < sizeof(user) - 1 ? size - split : sizeof(user) - 1;
	long retry, d;

	memcpy(ip, data, ipn);
	ip[ipn] = '\0';
	memcpy(user, data + split, un);
	user[un] = '\0';
	for (int i = 0; i < 4; i++) {
		d = penalty_failure(p, ip, user, clock_now + i);
		CHECK(d >= 2000 && d <= 30000);
	}
	CHECK(penalty_blocked(p, ip, clock_now + 4, &retry) == (penalty_ip_key(ip, NULL, 0) == 0));
	CHECK(penalty_list(p, clock_now + 4, out, 4) <= 2);
	penalty_success(p, ip, user, clock_now + 5);
	CHECK(penalty_blocked(p, ip, clock_now + 5, &retry) == 0);
	clock_now += 6;
	penalty_clear(p, ip);
	penalty_clear(p, user);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (data[0] & 1)
		run_model(data + 1, size - 1);
	else
		run_raw(data + 1, size - 1);
	return 0;
}
