/* Unit tests for lib/netaddr.c: CIDR parsing and matching, listen addresses, printing. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cmocka.h>

#include "netaddr.h"

static struct sockaddr_storage sa4(const char *ip)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

	memset(&ss, 0, sizeof(ss));
	sin->sin_family = AF_INET;
	sin->sin_port = htons(1234);
	assert_int_equal(inet_pton(AF_INET, ip, &sin->sin_addr), 1);
	return ss;
}

static struct sockaddr_storage sa6(const char *ip)
{
	struct sockaddr_storage ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(1234);
	assert_int_equal(inet_pton(AF_INET6, ip, &sin6->sin6_addr), 1);
	return ss;
}

static bool match4(const struct netmask *m, const char *ip)
{
	struct sockaddr_storage ss = sa4(ip);

	return netmask_match(m, (struct sockaddr *)&ss);
}

static bool match6(const struct netmask *m, const char *ip)
{
	struct sockaddr_storage ss = sa6(ip);

	return netmask_match(m, (struct sockaddr *)&ss);
}

static void test_netmask_parse_ok(void **state)
{
	static const unsigned char v6_fe80[16] = {0xfe, 0x80};
	static const unsigned char v6_one[16] = {[15] = 1};
	struct netmask m;

	(void)state;
	assert_int_equal(netmask_parse("127.0.0.0/8", &m), 0);
	assert_int_equal(m.family, AF_INET);
	assert_int_equal(m.prefix, 8);
	assert_memory_equal(m.addr, "\x7f\0\0\0", 4);

	assert_int_equal(netmask_parse("10.1.2.3", &m), 0);
	assert_int_equal(m.family, AF_INET);
	assert_int_equal(m.prefix, 32);
	assert_memory_equal(m.addr, "\x0a\x01\x02\x03", 4);

	assert_int_equal(netmask_parse("::1/128", &m), 0);
	assert_int_equal(m.family, AF_INET6);
	assert_int_equal(m.prefix, 128);
	assert_memory_equal(m.addr, v6_one, 16);

	assert_int_equal(netmask_parse("::1", &m), 0);
	assert_int_equal(m.family, AF_INET6);
	assert_int_equal(m.prefix, 128);

	assert_int_equal(netmask_parse("fe80::/10", &m), 0);
	assert_int_equal(m.family, AF_INET6);
	assert_int_equal(m.prefix, 10);
	assert_memory_equal(m.addr, v6_fe80, 16);

	assert_int_equal(netmask_parse("0.0.0.0/0", &m), 0);
	assert_int_equal(m.prefix, 0);
	assert_int_equal(netmask_parse("::/0", &m), 0);
	assert_int_equal(m.family, AF_INET6);
	assert_int_equal(m.prefix, 0);
	assert_int_equal(netmask_parse("1.2.3.4/32", &m), 0);
	assert_int_equal(m.prefix, 32);

	/* Host bits are cleared. */
	assert_int_equal(netmask_parse("10.1.2.3/8", &m), 0);
	assert_memory_equal(m.addr, "\x0a\0\0\0", 4);
	assert_int_equal(netmask_parse("192.168.255.255/20", &m), 0);
	assert_memory_equal(m.addr, "\xc0\xa8\xf0\x00", 4);

	/* An IPv4-mapped network becomes the IPv4 one. */
	assert_int_equal(netmask_parse("::ffff:10.0.0.0/104", &m), 0);
	assert_int_equal(m.family, AF_INET);
	assert_int_equal(m.prefix, 8);
	assert_memory_equal(m.addr, "\x0a\0\0\0", 4);
	assert_int_equal(netmask_parse("::ffff:192.0.2.7", &m), 0);
	assert_int_equal(m.family, AF_INET);
	assert_int_equal(m.prefix, 32);
	assert_memory_equal(m.addr, "\xc0\x00\x02\x07", 4);
	assert_int_equal(netmask_parse("::ffff:0.0.0.0/64", &m), 0);
	assert_int_equal(m.family, AF_INET6);
	assert_int_equal(m.prefix, 64);
}

static void test_netmask_parse_bad(void **state)
{
	static const char *const bad[] = {
	    "",
	    "/",
	    "/8",
	    "1.2.3.4/",
	    "1.2.3.4/33",
	    "1.2.3.4/64",
	    "::1/129",
	    "::/1000",
	    "1.2.3.4/+8",
	    "+1.2.3.4/8",
	    "1.2.3.4/-1",
	    "1.2.3.4/08",
	    "1.2.3.4/00",
	    "1.2.3.4/ 8",
	    "1.2.3.4/8 ",
	    " 1.2.3.4/8",
	    "1.2.3.4/8/8",
	    "1.2.3.4/0x8",
	    "1.2.3.4/18446744073709551624", /* 2^64 + 8 */
	    "1.2.3",
	    "1.2.3.4.5",
	    "1.2.3.256",
	    "01.2.3.4",
	    "localhost",
	    "localhost/8",
	    "junk",
	    "fe80::1%eth0/64",
	    "[::1]/128",
	    ":::/8",
	    "1.2.3.4:110",
	    "1234567890123456789012345678901234567890123456789/8",
	};
	struct netmask m;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&m, 0x5a, sizeof(m));
		if (netmask_parse(bad[i], &m) != -1)
			fail_msg("accepted \"%s\"", bad[i]);
	}
	/* "0" itself is the one prefix that may start with a zero. */
	assert_int_equal(netmask_parse("1.2.3.4/0", &m), 0);
}

static void test_netmask_match_v4(void **state)
{
	struct netmask m;

	(void)state;
	assert_int_equal(netmask_parse("127.0.0.0/8", &m), 0);
	assert_true(match4(&m, "127.0.0.1"));
	assert_true(match4(&m, "127.255.255.255"));
	assert_false(match4(&m, "128.0.0.1"));
	assert_false(match4(&m, "126.255.255.255"));
	assert_false(match6(&m, "::1"));
	assert_false(match6(&m, "7f00::1"));

	/* Prefix not on a byte boundary. */
	assert_int_equal(netmask_parse("192.168.16.0/20", &m), 0);
	assert_true(match4(&m, "192.168.16.0"));
	assert_true(match4(&m, "192.168.31.255"));
	assert_false(match4(&m, "192.168.32.0"));
	assert_false(match4(&m, "192.168.15.255"));

	assert_int_equal(netmask_parse("10.1.2.3", &m), 0);
	assert_true(match4(&m, "10.1.2.3"));
	assert_false(match4(&m, "10.1.2.2"));
	assert_false(match4(&m, "10.1.2.4"));
}

static void test_netmask_match_v6(void **state)
{
	struct netmask m;

	(void)state;
	assert_int_equal(netmask_parse("::1/128", &m), 0);
	assert_true(match6(&m, "::1"));
	assert_false(match6(&m, "::2"));
	assert_false(match4(&m, "127.0.0.1"));
	assert_false(match4(&m, "0.0.0.1"));

	assert_int_equal(netmask_parse("fe80::/10", &m), 0);
	assert_true(match6(&m, "fe80::1"));
	assert_true(match6(&m, "febf:ffff::1"));
	assert_false(match6(&m, "fec0::1"));
	assert_false(match6(&m, "fe7f::1"));

	assert_int_equal(netmask_parse("2001:db8::/32", &m), 0);
	assert_true(match6(&m, "2001:db8:1:2::3"));
	assert_false(match6(&m, "2001:db9::"));
}

static void test_netmask_match_mapped(void **state)
{
	struct netmask m;

	(void)state;
	assert_int_equal(netmask_parse("127.0.0.0/8", &m), 0);
	assert_true(match6(&m, "::ffff:127.0.0.1"));
	assert_false(match6(&m, "::ffff:128.0.0.1"));

	assert_int_equal(netmask_parse("10.1.2.3", &m), 0);
	assert_true(match6(&m, "::ffff:10.1.2.3"));
	assert_false(match6(&m, "::ffff:10.1.2.4"));
	/* IPv4-compatible (deprecated ::a.b.c.d) is not mapped. */
	assert_false(match6(&m, "::10.1.2.3"));

	/* Written as mapped, matches both kinds of IPv4 client. */
	assert_int_equal(netmask_parse("::ffff:10.0.0.0/104", &m), 0);
	assert_true(match4(&m, "10.9.9.9"));
	assert_true(match6(&m, "::ffff:10.9.9.9"));
	assert_false(match4(&m, "11.0.0.0"));

	/* A mapped client is an IPv4 client, not one of ::/0. */
	assert_int_equal(netmask_parse("::/0", &m), 0);
	assert_false(match6(&m, "::ffff:10.1.2.3"));
}

static void test_netmask_match_zero(void **state)
{
	struct sockaddr_un sun;
	struct netmask m;

	(void)state;
	assert_int_equal(netmask_parse("0.0.0.0/0", &m), 0);
	assert_true(match4(&m, "0.0.0.0"));
	assert_true(match4(&m, "1.2.3.4"));
	assert_true(match4(&m, "255.255.255.255"));
	assert_true(match6(&m, "::ffff:1.2.3.4"));
	assert_false(match6(&m, "::1"));
	assert_false(match6(&m, "2001:db8::1"));

	/* Host bits in a /0 are ignored. */
	assert_int_equal(netmask_parse("10.0.0.0/0", &m), 0);
	assert_true(match4(&m, "192.0.2.1"));

	assert_int_equal(netmask_parse("::/0", &m), 0);
	assert_true(match6(&m, "::"));
	assert_true(match6(&m, "::1"));
	assert_true(match6(&m, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
	assert_false(match4(&m, "1.2.3.4"));

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	assert_false(netmask_match(&m, (struct sockaddr *)&sun));
}

static void check_listen4(const char *s, const char *ip, unsigned port)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct in_addr want;
	socklen_t len = 0;

	if (netaddr_parse_listen(s, &ss, &len) != 0)
		fail_msg("refused \"%s\"", s);
	assert_int_equal(len, sizeof(struct sockaddr_in));
	assert_int_equal(sin->sin_family, AF_INET);
	assert_int_equal(ntohs(sin->sin_port), port);
	assert_int_equal(inet_pton(AF_INET, ip, &want), 1);
	assert_memory_equal(&sin->sin_addr, &want, sizeof(want));
}

static void check_listen6(const char *s, const char *ip, unsigned port)
{
	struct sockaddr_storage ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	struct in6_addr want;
	socklen_t len = 0;

	if (netaddr_parse_listen(s, &ss, &len) != 0)
		fail_msg("refused \"%s\"", s);
	assert_int_equal(len, sizeof(struct sockaddr_in6));
	assert_int_equal(sin6->sin6_family, AF_INET6);
	assert_int_equal(ntohs(sin6->sin6_port), port);
	assert_int_equal(inet_pton(AF_INET6, ip, &want), 1);
	assert_memory_equal(&sin6->sin6_addr, &want, sizeof(want));
	assert_int_equal(sin6->sin6_scope_id, 0);
	assert_int_equal(sin6->sin6_flowinfo, 0);
}

static void test_listen_ok(void **state)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	socklen_t len;

	(void)state;
	check_listen4("127.0.0.1:110", "127.0.0.1", 110);
	check_listen4("*:995", "0.0.0.0", 995);
	check_listen4("0.0.0.0:1", "0.0.0.0", 1);
	check_listen4("192.0.2.1:65535", "192.0.2.1", 65535);
	check_listen6("[::1]:110", "::1", 110);
	check_listen6("[::]:995", "::", 995);
	check_listen6("[2001:db8::1]:10110", "2001:db8::1", 10110);
	check_listen6("[::ffff:127.0.0.1]:110", "::ffff:127.0.0.1", 110);

	assert_int_equal(netaddr_parse_listen("*:995", &ss, &len), 0);
	assert_int_equal(sin->sin_addr.s_addr, htonl(INADDR_ANY));
}

static void test_listen_bad(void **state)
{
	static const char *const bad[] = {
	    "",
	    ":",
	    "127.0.0.1",
	    "127.0.0.1:",
	    ":110",
	    "127.0.0.1:0",
	    "127.0.0.1:00",
	    "127.0.0.1:0110",
	    "127.0.0.1:65536",
	    "127.0.0.1:70000",
	    "127.0.0.1:+110",
	    "127.0.0.1:-1",
	    "127.0.0.1: 110",
	    "127.0.0.1:110 ",
	    "127.0.0.1:110:1",
	    "127.0.0.1:pop3",
	    "localhost:110",
	    "mail.example.com:110",
	    "*:",
	    "**:110",
	    "[*]:110",
	    "1.2.3:110",
	    "::1:110",
	    "::1",
	    "[::1]",
	    "[::1]:",
	    "[::1]110",
	    "[::1]:0",
	    "[::1]:70000",
	    "[::1]]:110",
	    "[::1:110",
	    "[]:110",
	    "[127.0.0.1]:110",
	    "[fe80::1%eth0]:110",
	    "[localhost]:110",
	    "::1]:110",
	    "127.0.0.1/8:110",
	};
	struct sockaddr_storage ss;
	socklen_t len = 77;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (netaddr_parse_listen(bad[i], &ss, &len) != -1)
			fail_msg("accepted \"%s\"", bad[i]);
		assert_int_equal(len, 77);
	}
}

static void test_ntop(void **state)
{
	struct sockaddr_storage ss;
	struct sockaddr_un sun;
	char buf[64], tiny[4];

	(void)state;
	ss = sa4("127.0.0.1");
	assert_string_equal(netaddr_ntop((struct sockaddr *)&ss, buf, sizeof(buf)), "127.0.0.1");
	ss = sa4("255.255.255.255");
	assert_string_equal(netaddr_ntop((struct sockaddr *)&ss, buf, sizeof(buf)),
	                    "255.255.255.255");
	ss = sa6("::1");
	assert_string_equal(netaddr_ntop((struct sockaddr *)&ss, buf, sizeof(buf)), "::1");
	ss = sa6("2001:DB8:0:0::1");
	assert_string_equal(netaddr_ntop((struct sockaddr *)&ss, buf, sizeof(buf)), "2001:db8::1");
	ss = sa6("::ffff:192.0.2.7");
	assert_string_equal(netaddr_ntop((struct sockaddr *)&ss, buf, sizeof(buf)), "192.0.2.7");

	/* Always a string, even when the address does not fit or has no IP family. */
	ss = sa4("192.0.2.7");
	assert_ptr_equal(netaddr_ntop((struct sockaddr *)&ss, tiny, sizeof(tiny)), tiny);
	assert_string_equal(tiny, "?");
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	assert_string_equal(netaddr_ntop((struct sockaddr *)&sun, buf, sizeof(buf)), "?");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_netmask_parse_ok),
	    cmocka_unit_test(test_netmask_parse_bad),
	    cmocka_unit_test(test_netmask_match_v4),
	    cmocka_unit_test(test_netmask_match_v6),
	    cmocka_unit_test(test_netmask_match_mapped),
	    cmocka_unit_test(test_netmask_match_zero),
	    cmocka_unit_test(test_listen_ok),
	    cmocka_unit_test(test_listen_bad),
	    cmocka_unit_test(test_ntop),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
