/* Numeric IP address and CIDR parsing, network matching, and printing. */
#include "netaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "strnum.h"

static const unsigned char v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* Copy S[0..LEN) into OUT as a string; -1 when it cannot be an address at all. */
static int copy_host(char *out, size_t size, const char *s, size_t len)
{
	if (len == 0 || len >= size)
		return -1;
	memcpy(out, s, len);
	out[len] = '\0';
	return 0;
}

static void clear_host_bits(unsigned char *addr, size_t nbytes, unsigned prefix)
{
	for (size_t i = 0; i < nbytes; i++) {
		unsigned bit = (unsigned)i * 8;

		if (prefix <= bit)
			addr[i] = 0;
		else if (prefix < bit + 8)
			addr[i] &= (unsigned char)(0xff << (8 - (prefix - bit)));
	}
}

int netmask_parse(const char *s, struct netmask *m)
{
	char host[INET6_ADDRSTRLEN];
	const char *slash = strchr(s, '/');
	size_t hostlen = slash != NULL ? (size_t)(slash - s) : strlen(s);
	struct netmask r;
	unsigned maxbits;
	uint64_t prefix;

	memset(&r, 0, sizeof(r));
	if (copy_host(host, sizeof(host), s, hostlen) == -1)
		return -1;
	if (inet_pton(AF_INET, host, r.addr) == 1) {
		r.family = AF_INET;
		maxbits = 32;
	} else if (inet_pton(AF_INET6, host, r.addr) == 1) {
		r.family = AF_INET6;
		maxbits = 128;
	} else {
		return -1;
	}
	if (slash == NULL)
		prefix = maxbits;
	else if (strnum_parse(slash + 1, 0, maxbits, &prefix) == -1)
		return -1;
	r.prefix = (unsigned)prefix;

	/* IPv4 clients of a dual-stack listener show up as ::ffff:a.b.c.d, so a mapped network is
	 * kept as the IPv4 network it names; one rule then covers both kinds of listener. */
	if (r.family == AF_INET6 && r.prefix >= 96 &&
	    memcmp(r.addr, v4mapped_prefix, sizeof(v4mapped_prefix)) == 0) {
		memmove(r.addr, r.addr + 12, 4);
		memset(r.addr + 4, 0, 12);
		r.family = AF_INET;
		r.prefix -= 96;
		maxbits = 32;
	}
	/* "10.1.2.3/8" is taken as 10.0.0.0/8, as most tools do; matching ignores host bits anyway.
	 */
	clear_host_bits(r.addr, maxbits / 8, r.prefix);
	*m = r;
	return 0;
}

static bool prefix_equal(const unsigned char *a, const unsigned char *b, unsigned prefix)
{
	size_t full = prefix / 8;
	unsigned rest = prefix % 8;
	unsigned char mask;

	if (memcmp(a, b, full) != 0)
		return false;
	if (rest == 0)
		return true;
	mask = (unsigned char)(0xff << (8 - rest));
	return (a[full] & mask) == (b[full] & mask);
}

bool netmask_match(const struct netmask *m, const struct sockaddr *sa)
{
	unsigned char addr[16];
	int family;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

		memcpy(addr, &sin->sin_addr, 4);
		family = AF_INET;
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			memcpy(addr, sin6->sin6_addr.s6_addr + 12, 4);
			family = AF_INET;
		} else {
			memcpy(addr, &sin6->sin6_addr, 16);
			family = AF_INET6;
		}
	} else {
		return false;
	}
	if (family != m->family || m->prefix > (family == AF_INET ? 32u : 128u))
		return false;
	return prefix_equal(addr, m->addr, m->prefix);
}

int netaddr_parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len_r)
{
	char host[INET6_ADDRSTRLEN];
	const char *port;
	uint64_t portnum;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		struct sockaddr_in6 sin6;

		if (close == NULL || close[1] != ':')
			return -1;
		if (copy_host(host, sizeof(host), s + 1, (size_t)(close - s - 1)) == -1)
			return -1;
		port = close + 2;
		if (strnum_parse(port, 1, 65535, &portnum) == -1)
			return -1;
		memset(&sin6, 0, sizeof(sin6));
		sin6.sin6_family = AF_INET6;
		sin6.sin6_port = htons((uint16_t)portnum);
		if (inet_pton(AF_INET6, host, &sin6.sin6_addr) != 1)
			return -1;
		memset(ss, 0, sizeof(*ss));
		memcpy(ss, &sin6, sizeof(sin6));
		*len_r = sizeof(sin6);
	} else {
		const char *colon = strchr(s, ':');
		struct sockaddr_in sin;

		/* An unbracketed IPv6 address has no unambiguous port; insist on brackets. */
		if (colon == NULL || strchr(colon + 1, ':') != NULL)
			return -1;
		if (copy_host(host, sizeof(host), s, (size_t)(colon - s)) == -1)
			return -1;
		port = colon + 1;
		if (strnum_parse(port, 1, 65535, &portnum) == -1)
			return -1;
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_port = htons((uint16_t)portnum);
		if (strcmp(host, "*") == 0)
			sin.sin_addr.s_addr = htonl(INADDR_ANY);
		else if (inet_pton(AF_INET, host, &sin.sin_addr) != 1)
			return -1;
		memset(ss, 0, sizeof(*ss));
		memcpy(ss, &sin, sizeof(sin));
		*len_r = sizeof(sin);
	}
	return 0;
}

char *netaddr_ntop(const struct sockaddr *sa, char *out, size_t size)
{
	const char *r = NULL;

	if (size == 0)
		return out;
	if (size > (socklen_t)-1)
		size = (socklen_t)-1;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

		r = inet_ntop(AF_INET, &sin->sin_addr, out, (socklen_t)size);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

		/* Logs and per-source limits should name an IPv4 client the same way on any
		 * listener. */
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
			r = inet_ntop(AF_INET, sin6->sin6_addr.s6_addr + 12, out, (socklen_t)size);
		else
			r = inet_ntop(AF_INET6, &sin6->sin6_addr, out, (socklen_t)size);
	}
	/* Callers put the result straight into a log line, so it is always a string. */
	if (r == NULL)
		snprintf(out, size, "?");
	return out;
}
