/* Unit tests for lib/penalty.c: delays, blocks, expiry, address keys, eviction, list and clear. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "penalty.h"

#define T0 ((time_t)1700000000)

static const struct penalty_conf default_conf = {
    .base_delay = 2, .max_delay = 30, .ip_max_failures = 10, .block_time = 900};

static struct penalty *new_table(const struct penalty_conf *c)
{
	struct penalty *p = penalty_new(c);

	assert_non_null(p);
	return p;
}

/* Failures of KEY among the N entries of OUT; -1 when not there. */
static long find_failures(const struct penalty_entry *out, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(out[i].key, key) == 0)
			return out[i].failures;
	return -1;
}

/* Failures of KEY as penalty_list shows it at NOW; -1 when not listed. */
#define LISTED_MAX 1024
static long listed_failures(struct penalty *p, time_t now, const char *key)
{
	static struct penalty_entry out[LISTED_MAX];
	size_t n = penalty_list(p, now, out, LISTED_MAX);

	assert_true(n < LISTED_MAX);
	return find_failures(out, n, key);
}

static void test_delays_exact(void **state)
{
	static const long want[] = {2000,  4000,  8000,  16000, 30000,
	                            30000, 30000, 30000, 30000, 30000};
	struct penalty_conf c = default_conf;
	struct penalty *p;

	(void)state;
	c.ip_max_failures = 100;
	p = new_table(&c);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		assert_int_equal(penalty_failure(p, "192.0.2.1", "alice", T0 + (time_t)i), want[i]);
	penalty_free(p);
}

static void test_delay_edges(void **state)
{
	struct penalty_conf c = {
	    .base_delay = 0, .max_delay = 30, .ip_max_failures = 100, .block_time = 900};
	struct penalty *p;

	(void)state;
	/* No base delay: every failed reply goes out at once. */
	p = new_table(&c);
	for (int i = 0; i < 5; i++)
		assert_int_equal(penalty_failure(p, "192.0.2.1", NULL, T0), 0);
	/* Base above the cap: the cap wins from the first failure. */
	c.base_delay = 60;
	c.max_delay = 10;
	penalty_set_conf(p, &c);
	assert_int_equal(penalty_failure(p, "192.0.2.2", NULL, T0), 10000);
	/* Out-of-range settings are clamped, never overflow. */
	c.base_delay = 1;
	c.max_delay = 1000000;
	penalty_set_conf(p, &c);
	for (int i = 0; i < 20; i++)
		penalty_failure(p, "192.0.2.3", NULL, T0);
	assert_int_equal(penalty_failure(p, "192.0.2.3", NULL, T0), PENALTY_DELAY_LIMIT * 1000);
	/* Neither an address nor a user: still one failure's delay. */
	c.base_delay = 3;
	c.max_delay = 30;
	penalty_set_conf(p, &c);
	assert_int_equal(penalty_failure(p, "not an ip", NULL, T0), 3000);
	assert_int_equal(penalty_failure(p, "not an ip", "", T0), 3000);
	penalty_free(p);
}

/* n is the larger of the address's and the account's counts, whichever that is. */
static void test_delay_max_of_ip_and_account(void **state)
{
	struct penalty *p = new_table(&default_conf);

	(void)state;
	assert_int_equal(penalty_failure(p, "192.0.2.1", "u1", T0), 2000);
	assert_int_equal(penalty_failure(p, "192.0.2.1", "u2", T0), 4000);
	assert_int_equal(penalty_failure(p, "192.0.2.1", "u3", T0), 8000);
	assert_int_equal(penalty_failure(p, "192.0.2.1", "u1", T0), 16000);
	/* From fresh addresses the account's count decides. */
	assert_int_equal(penalty_failure(p, "192.0.2.2", "u1", T0), 8000);
	assert_int_equal(penalty_failure(p, "192.0.2.3", "u2", T0), 4000);
	assert_int_equal(penalty_failure(p, "192.0.2.3", "u4", T0), 4000);
	assert_int_equal(penalty_failure(p, "192.0.2.4", "u4", T0), 4000);
	penalty_free(p);
}

static void test_counter_saturates(void **state)
{
	struct penalty *p = new_table(&default_conf);

	(void)state;
	for (long i = 0; i < PENALTY_FAILURES_MAX + 5; i++)
		penalty_failure(p, "192.0.2.1", NULL, T0);
	assert_int_equal(listed_failures(p, T0, "192.0.2.1"), PENALTY_FAILURES_MAX);
	assert_int_equal(penalty_failure(p, "192.0.2.1", NULL, T0), 30000);
	penalty_free(p);
}

static void test_block_after_max(void **state)
{
	struct penalty *p = new_table(&default_conf);
	long retry = -1;

	(void)state;
	for (long i = 1; i < 10; i++) {
		penalty_failure(p, "198.51.100.7", NULL, T0);
		assert_int_equal(penalty_blocked(p, "198.51.100.7", T0, &retry), 0);
		assert_int_equal(retry, 0);
	}
	penalty_failure(p, "198.51.100.7", NULL, T0 + 100);
	assert_int_equal(penalty_blocked(p, "198.51.100.7", T0 + 100, &retry), 1);
	assert_int_equal(retry, 900);
	assert_int_equal(penalty_blocked(p, "198.51.100.7", T0 + 400, &retry), 1);
	assert_int_equal(retry, 600);
	assert_int_equal(penalty_blocked(p, "198.51.100.7", T0 + 999, &retry), 1);
	assert_int_equal(retry, 1);
	assert_int_equal(penalty_blocked(p, "198.51.100.7", T0 + 999, NULL), 1);
	/* Another address is not affected. */
	assert_int_equal(penalty_blocked(p, "198.51.100.8", T0 + 100, &retry), 0);
	/* A clock stepped back never makes the block longer than block_time. */
	assert_int_equal(penalty_blocked(p, "198.51.100.7", T0, &retry), 1);
	assert_int_equal(retry, 900);
	/* The block ends, and the failures are forgotten, block_time after the last failure. */
	assert_int_equal(penalty_blocked(p, "198.51.100.7", T0 + 1000, &retry), 0);
	assert_int_equal(retry, 0);
	assert_int_equal(penalty_failure(p, "198.51.100.7", NULL, T0 + 1000), 2000);
	assert_int_equal(penalty_blocked(p, "198.51.100.7", T0 + 1000, &retry), 0);
	penalty_free(p);
}

static void test_unparsable_never_blocked(void **state)
{
	struct penalty_conf c = default_conf;
	struct penalty *p;
	long retry = -1;

	(void)state;
	c.ip_max_failures = 1;
	p = new_table(&c);
	penalty_failure(p, "garbage", "bob", T0);
	penalty_failure(p, "garbage", "bob", T0);
	assert_int_equal(penalty_blocked(p, "garbage", T0, &retry), 0);
	assert_int_equal(retry, 0);
	assert_int_equal(penalty_blocked(p, NULL, T0, &retry), 0);
	assert_int_equal(penalty_blocked(p, "", T0, &retry), 0);
	penalty_failure(p, "192.0.2.1", NULL, T0);
	assert_int_equal(penalty_blocked(p, "192.0.2.1", T0, &retry), 1);
	penalty_free(p);
}

static void test_window_expiry(void **state)
{
	struct penalty *p = new_table(&default_conf);

	(void)state;
	assert_int_equal(penalty_failure(p, "192.0.2.1", "carol", T0), 2000);
	assert_int_equal(penalty_failure(p, "192.0.2.1", "carol", T0 + 899), 4000);
	/* 899 s after the last failure: still counted. */
	assert_int_equal(penalty_failure(p, "192.0.2.1", "carol", T0 + 1798), 8000);
	assert_int_equal(listed_failures(p, T0 + 2697, "192.0.2.1"), 3);
	assert_int_equal(listed_failures(p, T0 + 2697, "carol"), 3);
	/* 900 s after: forgotten, for the address and the account alike. */
	assert_int_equal(listed_failures(p, T0 + 2698, "192.0.2.1"), -1);
	assert_int_equal(listed_failures(p, T0 + 2698, "carol"), -1);
	assert_int_equal(penalty_failure(p, "192.0.2.1", "carol", T0 + 2698), 2000);
	penalty_free(p);
}

/* With the clock stepped back, entries are no longer in time order; each lookup still checks its
 * own entry's age. */
static void test_clock_step_back(void **state)
{
	struct penalty *p = new_table(&default_conf);
	long retry;

	(void)state;
	penalty_failure(p, "192.0.2.1", "frank", T0 + 1000);
	for (int i = 0; i < 10; i++)
		penalty_failure(p, "192.0.2.2", "gina", T0);
	/* 192.0.2.1 (first in the list) is still live, 192.0.2.2 has expired behind it. */
	assert_int_equal(penalty_blocked(p, "192.0.2.2", T0 + 950, &retry), 0);
	assert_int_equal(listed_failures(p, T0 + 950, "192.0.2.2"), -1);
	assert_int_equal(listed_failures(p, T0 + 950, "192.0.2.1"), 1);
	assert_int_equal(penalty_failure(p, "192.0.2.2", "gina", T0 + 950), 2000);
	assert_int_equal(listed_failures(p, T0 + 950, "192.0.2.2"), 1);
	assert_int_equal(listed_failures(p, T0 + 950, "gina"), 1);
	penalty_free(p);
}

static void test_ip_keys(void **state)
{
	char key[PENALTY_IP_KEY_MAX];
	char small[PENALTY_IP_KEY_MAX - 1];

	(void)state;
	assert_int_equal(penalty_ip_key("192.0.2.1", key, sizeof(key)), 0);
	assert_string_equal(key, "192.0.2.1");
	assert_int_equal(penalty_ip_key("::ffff:1.2.3.4", key, sizeof(key)), 0);
	assert_string_equal(key, "1.2.3.4");
	assert_int_equal(penalty_ip_key("2001:db8:1:2:aaaa:bbbb:cccc:dddd", key, sizeof(key)), 0);
	assert_string_equal(key, "2001:db8:1:2::/64");
	assert_int_equal(penalty_ip_key("2001:DB8:1:2::/64", key, sizeof(key)), 0);
	assert_string_equal(key, "2001:db8:1:2::/64");
	assert_int_equal(penalty_ip_key("2001:db8::1", key, sizeof(key)), 0);
	assert_string_equal(key, "2001:db8::/64");
	assert_int_equal(
	    penalty_ip_key("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", key, sizeof(key)), 0);
	assert_string_equal(key, "ffff:ffff:ffff:ffff::/64");
	assert_int_equal(penalty_ip_key("::1", key, sizeof(key)), 0);
	assert_string_equal(key, "::/64");
	assert_int_equal(penalty_ip_key("192.0.2.1", NULL, 0), 0);
	assert_int_equal(penalty_ip_key("192.0.2.1", small, sizeof(small)), -1);

	static const char *const bad[] = {
	    "",
	    "alice",
	    "1.2.3",
	    "1.2.3.4.5",
	    "01.2.3.4",
	    "256.1.1.1",
	    "1.2.3.4/64",
	    "1.2.3.4/32",
	    "::ffff:1.2.3.4/64",
	    "2001:db8::/48",
	    "/64",
	    "2001:db8::1%eth0",
	    " 192.0.2.1",
	    "192.0.2.1 ",
	    "[2001:db8::1]",
	    "2001:db8:1:2:3:4:5:6:7",
	    "0000000000000000000000000000000000000000000000000000000000000001.2.3.4",
	    "2001:db8:1:2::/64/64",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (penalty_ip_key(bad[i], key, sizeof(key)) != -1)
			fail_msg("accepted \"%s\"", bad[i]);
	}
	assert_int_equal(penalty_ip_key(NULL, key, sizeof(key)), -1);
}

static void test_ipv6_per_64(void **state)
{
	struct penalty_conf c = default_conf;
	struct penalty *p;
	long retry;

	(void)state;
	c.ip_max_failures = 3;
	p = new_table(&c);
	assert_int_equal(penalty_failure(p, "2001:db8:1:2::1", NULL, T0), 2000);
	assert_int_equal(penalty_failure(p, "2001:db8:1:2::ffff", NULL, T0), 4000);
	assert_int_equal(penalty_blocked(p, "2001:db8:1:2:ffff:ffff:ffff:ffff", T0, &retry), 0);
	assert_int_equal(penalty_failure(p, "2001:db8:1:2:dead:beef:0:1", NULL, T0), 8000);
	assert_int_equal(penalty_blocked(p, "2001:db8:1:2::77", T0, &retry), 1);
	assert_int_equal(retry, 900);
	/* The neighbouring /64s are separate customers. */
	assert_int_equal(penalty_blocked(p, "2001:db8:1:3::1", T0, &retry), 0);
	assert_int_equal(penalty_blocked(p, "2001:db8:1:1::1", T0, &retry), 0);
	assert_int_equal(penalty_failure(p, "2001:db8:1:3::1", NULL, T0), 2000);
	assert_int_equal(listed_failures(p, T0, "2001:db8:1:2::/64"), 3);
	assert_int_equal(listed_failures(p, T0, "2001:db8:1:3::/64"), 1);
	penalty_free(p);
}

static void test_v4_mapped(void **state)
{
	struct penalty_conf c = default_conf;
	struct penalty *p;
	long retry;

	(void)state;
	c.ip_max_failures = 2;
	p = new_table(&c);
	assert_int_equal(penalty_failure(p, "::ffff:1.2.3.4", NULL, T0), 2000);
	assert_int_equal(penalty_failure(p, "1.2.3.4", NULL, T0), 4000);
	assert_int_equal(penalty_blocked(p, "1.2.3.4", T0, &retry), 1);
	assert_int_equal(penalty_blocked(p, "::ffff:1.2.3.4", T0, &retry), 1);
	assert_int_equal(retry, 900);
	/* ::ffff:1.2.3.4 is not in the IPv6 /64 ::/64, and 1.2.3.5 is another client. */
	assert_int_equal(penalty_blocked(p, "::1", T0, &retry), 0);
	assert_int_equal(penalty_blocked(p, "::ffff:1.2.3.5", T0, &retry), 0);
	assert_int_equal(listed_failures(p, T0, "1.2.3.4"), 2);
	penalty_free(p);
}

/* The account under attack: failures from 100 addresses make its failed replies slower and slower
 * but never refuse or delay a correct login from an address with no failures. */
static void test_account_never_locked(void **state)
{
	struct penalty *p = new_table(&default_conf);
	char ip[32];
	long retry = -1, d;

	(void)state;
	for (int i = 0; i < 100; i++) {
		snprintf(ip, sizeof(ip), "203.0.113.%d", i);
		d = penalty_failure(p, ip, "victim", T0 + i);
		/* Failure i+1 of the account, the first of the address. */
		assert_int_equal(d, i == 0   ? 2000
		                    : i == 1 ? 4000
		                    : i == 2 ? 8000
		                    : i == 3 ? 16000
		                             : 30000);
		assert_int_equal(penalty_blocked(p, ip, T0 + i, &retry), 0);
	}
	assert_int_equal(listed_failures(p, T0 + 100, "victim"), 100);
	/* A fresh address is not refused, and its correct login goes through. */
	assert_int_equal(penalty_blocked(p, "192.0.2.99", T0 + 100, &retry), 0);
	assert_int_equal(retry, 0);
	penalty_success(p, "192.0.2.99", "victim", T0 + 100);
	assert_int_equal(penalty_blocked(p, "192.0.2.99", T0 + 100, &retry), 0);
	/* The account's failures stay after the success: a wrong password still waits long. */
	assert_int_equal(listed_failures(p, T0 + 100, "victim"), 100);
	assert_int_equal(penalty_failure(p, "192.0.2.99", "victim", T0 + 101), 30000);
	/* Another account from the same address is not slowed by victim's history. */
	assert_int_equal(penalty_failure(p, "192.0.2.100", "other", T0 + 101), 2000);
	/* User names compare exactly. */
	assert_int_equal(penalty_failure(p, "192.0.2.101", "Victim", T0 + 101), 2000);
	penalty_free(p);
}

static void test_success_clears_ip(void **state)
{
	struct penalty *p = new_table(&default_conf);
	long retry;

	(void)state;
	for (int i = 0; i < 10; i++)
		penalty_failure(p, "192.0.2.1", "dave", T0);
	assert_int_equal(penalty_blocked(p, "192.0.2.1", T0, &retry), 1);
	penalty_success(p, "192.0.2.1", "dave", T0);
	assert_int_equal(penalty_blocked(p, "192.0.2.1", T0, &retry), 0);
	assert_int_equal(listed_failures(p, T0, "192.0.2.1"), -1);
	assert_int_equal(listed_failures(p, T0, "dave"), 10);
	/* The account's count still sets the delay; the address starts over. */
	assert_int_equal(penalty_failure(p, "192.0.2.1", NULL, T0 + 1), 2000);
	assert_int_equal(penalty_failure(p, "192.0.2.1", "dave", T0 + 1), 30000);
	/* Success for an unknown or unparsable address changes nothing. */
	penalty_success(p, "192.0.2.77", "dave", T0 + 1);
	penalty_success(p, "bogus", NULL, T0 + 1);
	assert_int_equal(listed_failures(p, T0 + 1, "192.0.2.1"), 2);
	penalty_free(p);
}

static void test_long_user_not_counted(void **state)
{
	struct penalty *p = new_table(&default_conf);
	char name[USERNAME_MAX + 2];

	(void)state;
	memset(name, 'a', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	/* USERNAME_MAX + 1 bytes: not an account, but the address counts. */
	assert_int_equal(penalty_failure(p, "192.0.2.1", name, T0), 2000);
	assert_int_equal(penalty_failure(p, "192.0.2.2", name, T0), 2000);
	/* Exactly USERNAME_MAX bytes is a valid account name. */
	name[USERNAME_MAX] = '\0';
	assert_int_equal(penalty_failure(p, "192.0.2.3", name, T0), 2000);
	assert_int_equal(penalty_failure(p, "192.0.2.4", name, T0), 4000);
	assert_int_equal(listed_failures(p, T0, name), 2);
	assert_int_equal(penalty_clear(p, name), 1);
	penalty_free(p);
}

static void ip_of(unsigned i, char *out, size_t size)
{
	snprintf(out, size, "10.%u.%u.%u", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff);
}

static void test_ip_table_full_evicts_oldest(void **state)
{
	struct penalty_conf c = default_conf;
	struct penalty *p;
	struct penalty_entry *all;
	char ip[32];
	long retry;
	size_t n;

	(void)state;
	c.ip_max_failures = 2;
	c.block_time = 86400;
	p = new_table(&c);
	for (unsigned i = 0; i < PENALTY_IPS_MAX; i++) {
		ip_of(i, ip, sizeof(ip));
		penalty_failure(p, ip, NULL, T0 + (time_t)(i / 16));
	}
	/* 10.0.0.0 gets blocked and 10.0.0.1 fails again: neither is the oldest any more. */
	penalty_failure(p, "10.0.0.0", NULL, T0 + 5000);
	penalty_failure(p, "10.0.0.1", NULL, T0 + 5000);
	assert_int_equal(penalty_blocked(p, "10.0.0.0", T0 + 5000, &retry), 1);
	all = calloc(PENALTY_IPS_MAX + 1, sizeof(*all));
	assert_non_null(all);
	n = penalty_list(p, T0 + 5000, all, PENALTY_IPS_MAX + 1);
	assert_int_equal(n, PENALTY_IPS_MAX);
	assert_int_equal(find_failures(all, n, "10.0.0.2"), 1);

	/* One more address: the entry with the oldest last failure (10.0.0.2, the first recorded
	 * at T0 of those left alone) goes, the new one is counted. */
	assert_int_equal(penalty_failure(p, "10.1.0.0", NULL, T0 + 5000), 2000);
	n = penalty_list(p, T0 + 5000, all, PENALTY_IPS_MAX + 1);
	assert_int_equal(n, PENALTY_IPS_MAX);
	assert_int_equal(find_failures(all, n, "10.1.0.0"), 1);
	assert_int_equal(find_failures(all, n, "10.0.0.2"), -1);
	assert_int_equal(find_failures(all, n, "10.0.0.3"), 1);
	assert_int_equal(find_failures(all, n, "10.0.0.0"), 2);
	assert_int_equal(find_failures(all, n, "10.0.0.1"), 2);
	assert_int_equal(penalty_blocked(p, "10.0.0.0", T0 + 5000, &retry), 1);
	/* And the next one pushes out 10.0.0.3. */
	penalty_failure(p, "10.1.0.1", NULL, T0 + 5000);
	n = penalty_list(p, T0 + 5000, all, PENALTY_IPS_MAX + 1);
	assert_int_equal(n, PENALTY_IPS_MAX);
	assert_int_equal(find_failures(all, n, "10.0.0.3"), -1);
	assert_int_equal(find_failures(all, n, "10.0.0.4"), 1);
	/* An attacker who cycles past the table pushes out even a blocked address; it then starts
	 * over, paying the delays again. */
	for (unsigned i = 0; i < PENALTY_IPS_MAX; i++) {
		ip_of(i + (1u << 20), ip, sizeof(ip));
		penalty_failure(p, ip, NULL, T0 + 6000);
	}
	assert_int_equal(penalty_blocked(p, "10.0.0.0", T0 + 6000, &retry), 0);
	assert_int_equal(penalty_failure(p, "10.0.0.0", NULL, T0 + 6000), 2000);
	free(all);
	penalty_free(p);
}

static void test_user_table_full_evicts_oldest(void **state)
{
	struct penalty *p = new_table(&default_conf);
	char name[32];

	(void)state;
	for (unsigned i = 0; i < PENALTY_USERS_MAX; i++) {
		snprintf(name, sizeof(name), "user%u", i);
		penalty_failure(p, NULL, name, T0);
	}
	assert_int_equal(penalty_failure(p, NULL, "user0", T0 + 1), 4000);
	/* Full: the new name pushes out user1, now the oldest. */
	assert_int_equal(penalty_failure(p, NULL, "newcomer", T0 + 1), 2000);
	assert_int_equal(penalty_failure(p, NULL, "user2", T0 + 1), 4000);
	assert_int_equal(penalty_failure(p, NULL, "user1", T0 + 1), 2000);
	/* user1 coming back pushed out user3. */
	assert_int_equal(penalty_failure(p, NULL, "user3", T0 + 1), 2000);
	assert_int_equal(penalty_failure(p, NULL, "user0", T0 + 1), 8000);
	assert_int_equal(penalty_failure(p, NULL, "newcomer", T0 + 1), 4000);
	penalty_free(p);
}

static void test_expired_pruned_before_eviction(void **state)
{
	struct penalty_conf c = default_conf;
	struct penalty *p;
	char ip[32];

	(void)state;
	c.block_time = 10;
	p = new_table(&c);
	for (unsigned i = 0; i < PENALTY_IPS_MAX; i++) {
		ip_of(i, ip, sizeof(ip));
		penalty_failure(p, ip, NULL, T0);
	}
	/* Ten seconds later every entry has expired: a new failure empties the table first. */
	penalty_failure(p, "192.0.2.1", NULL, T0 + 10);
	assert_int_equal(penalty_clear(p, NULL), 1);
	penalty_free(p);
}

static void test_list_order_and_content(void **state)
{
	struct penalty_entry out[16];
	struct penalty_conf c = default_conf;
	struct penalty *p;
	size_t n;

	(void)state;
	c.ip_max_failures = 3;
	p = new_table(&c);
	penalty_failure(p, "192.0.2.1", "alice", T0);
	penalty_failure(p, "2001:db8:1:2::1", "bob", T0 + 1);
	penalty_failure(p, "2001:db8:1:2::2", "bob", T0 + 2);
	penalty_failure(p, "2001:db8:1:2::3", "bob", T0 + 3);
	penalty_failure(p, "198.51.100.1", "carol", T0 + 4);
	penalty_failure(p, "198.51.100.1", "carol", T0 + 5);
	penalty_failure(p, "192.0.2.2", "alice", T0 + 6);
	/* An expired entry is not listed. */
	penalty_failure(p, "203.0.113.9", "old", T0 - 900);

	n = penalty_list(p, T0 + 10, out, 16);
	assert_int_equal(n, 7);
	assert_true(out[0].is_ip);
	assert_string_equal(out[0].key, "2001:db8:1:2::/64");
	assert_int_equal(out[0].failures, 3);
	assert_int_equal(out[0].last_failure, T0 + 3);
	assert_int_equal(out[0].blocked_until, T0 + 3 + 900);
	assert_true(out[1].is_ip);
	assert_string_equal(out[1].key, "198.51.100.1");
	assert_int_equal(out[1].failures, 2);
	assert_int_equal(out[1].last_failure, T0 + 5);
	assert_int_equal(out[1].blocked_until, 0);
	/* Equal counts: the most recent failure first. */
	assert_string_equal(out[2].key, "192.0.2.2");
	assert_int_equal(out[2].last_failure, T0 + 6);
	assert_string_equal(out[3].key, "192.0.2.1");
	assert_int_equal(out[3].failures, 1);
	assert_int_equal(out[3].blocked_until, 0);
	assert_false(out[4].is_ip);
	assert_string_equal(out[4].key, "bob");
	assert_int_equal(out[4].failures, 3);
	assert_int_equal(out[4].blocked_until, 0);
	assert_string_equal(out[5].key, "alice");
	assert_int_equal(out[5].failures, 2);
	assert_int_equal(out[5].last_failure, T0 + 6);
	assert_string_equal(out[6].key, "carol");
	assert_int_equal(out[6].failures, 2);
	assert_int_equal(out[6].last_failure, T0 + 5);
	assert_false(out[6].is_ip);

	/* MAX cuts the list: IPs first, most failures first. */
	memset(out, 0x55, sizeof(out));
	assert_int_equal(penalty_list(p, T0 + 10, out, 2), 2);
	assert_string_equal(out[0].key, "2001:db8:1:2::/64");
	assert_string_equal(out[1].key, "198.51.100.1");
	assert_int_equal(penalty_list(p, T0 + 10, out, 5), 5);
	assert_string_equal(out[4].key, "bob");
	assert_int_equal(penalty_list(p, T0 + 10, NULL, 0), 0);
	/* Later, as entries expire. */
	assert_int_equal(penalty_list(p, T0 + 904, out, 16), 4);
	assert_string_equal(out[0].key, "198.51.100.1");
	assert_int_equal(penalty_list(p, T0 + 906, out, 16), 0);
	penalty_free(p);
}

static void test_clear(void **state)
{
	struct penalty_entry out[16];
	struct penalty *p = new_table(&default_conf);
	long retry;

	(void)state;
	for (int i = 0; i < 10; i++) {
		penalty_failure(p, "192.0.2.1", "alice", T0);
		penalty_failure(p, "2001:db8:1:2::1", "bob", T0);
		penalty_failure(p, "::ffff:198.51.100.1", "carol", T0);
	}
	penalty_failure(p, "2001:db8:1:3::1", NULL, T0);
	assert_int_equal(penalty_list(p, T0, out, 16), 7);
	assert_int_equal(penalty_blocked(p, "192.0.2.1", T0, &retry), 1);

	assert_int_equal(penalty_clear(p, "192.0.2.1"), 1);
	assert_int_equal(penalty_blocked(p, "192.0.2.1", T0, &retry), 0);
	assert_int_equal(penalty_clear(p, "192.0.2.1"), 0);
	/* By /64 text, or by any address inside it. */
	assert_int_equal(penalty_clear(p, "2001:db8:1:2::/64"), 1);
	assert_int_equal(penalty_blocked(p, "2001:db8:1:2::1", T0, &retry), 0);
	assert_int_equal(penalty_clear(p, "2001:db8:1:3:ffff::9"), 1);
	/* A mapped address names the IPv4 entry. */
	assert_int_equal(penalty_clear(p, "::ffff:198.51.100.1"), 1);
	/* A user name. */
	assert_int_equal(penalty_clear(p, "bob"), 1);
	assert_int_equal(penalty_clear(p, "bob"), 0);
	assert_int_equal(penalty_clear(p, "Alice"), 0);
	assert_int_equal(penalty_clear(p, ""), 0);
	assert_int_equal(penalty_list(p, T0, out, 16), 2);
	assert_string_equal(out[0].key, "alice");
	assert_string_equal(out[1].key, "carol");
	/* Everything. */
	assert_int_equal(penalty_clear(p, NULL), 2);
	assert_int_equal(penalty_list(p, T0, out, 16), 0);
	assert_int_equal(penalty_clear(p, NULL), 0);
	/* Expired entries still stored are dropped first, not counted. */
	penalty_failure(p, "192.0.2.1", "alice", T0);
	assert_int_equal(penalty_blocked(p, "192.0.2.5", T0 + 900, &retry), 0);
	assert_int_equal(penalty_clear(p, NULL), 0);
	penalty_free(p);
}

static void test_set_conf_keeps_entries(void **state)
{
	struct penalty_conf c = default_conf;
	struct penalty *p;
	long retry;

	(void)state;
	p = new_table(&c);
	for (int i = 0; i < 5; i++)
		penalty_failure(p, "192.0.2.1", "erin", T0);
	assert_int_equal(penalty_blocked(p, "192.0.2.1", T0, &retry), 0);
	/* Reload with a lower threshold: the five failures kept now block. */
	c.ip_max_failures = 5;
	c.block_time = 600;
	penalty_set_conf(p, &c);
	assert_int_equal(penalty_blocked(p, "192.0.2.1", T0 + 100, &retry), 1);
	assert_int_equal(retry, 500);
	assert_int_equal(listed_failures(p, T0 + 100, "erin"), 5);
	/* New delays apply to the kept counts: n = 6. */
	c.base_delay = 1;
	c.max_delay = 600;
	penalty_set_conf(p, &c);
	assert_int_equal(penalty_failure(p, "192.0.2.9", "erin", T0 + 100), 32000);
	/* Nonsense values are clamped, not trusted. */
	c.ip_max_failures = -4;
	c.block_time = -1;
	penalty_set_conf(p, &c);
	assert_int_equal(penalty_blocked(p, "192.0.2.1", T0 + 100, &retry), 0);
	assert_int_equal(listed_failures(p, T0 + 100, "erin"), -1);
	penalty_free(p);
	penalty_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_delays_exact),
	    cmocka_unit_test(test_delay_edges),
	    cmocka_unit_test(test_delay_max_of_ip_and_account),
	    cmocka_unit_test(test_counter_saturates),
	    cmocka_unit_test(test_block_after_max),
	    cmocka_unit_test(test_unparsable_never_blocked),
	    cmocka_unit_test(test_window_expiry),
	    cmocka_unit_test(test_clock_step_back),
	    cmocka_unit_test(test_ip_keys),
	    cmocka_unit_test(test_ipv6_per_64),
	    cmocka_unit_test(test_v4_mapped),
	    cmocka_unit_test(test_account_never_locked),
	    cmocka_unit_test(test_success_clears_ip),
	    cmocka_unit_test(test_long_user_not_counted),
	    cmocka_unit_test(test_ip_table_full_evicts_oldest),
	    cmocka_unit_test(test_user_table_full_evicts_oldest),
	    cmocka_unit_test(test_expired_pruned_before_eviction),
	    cmocka_unit_test(test_list_order_and_content),
	    cmocka_unit_test(test_clear),
	    cmocka_unit_test(test_set_conf_keeps_entries),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
