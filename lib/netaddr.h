/* IP addresses and CIDR networks: parsing listen addresses and trusted_networks, and matching. */
#ifndef GANNET_NETADDR_H
#define GANNET_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct netmask {
	int family; /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	unsigned prefix;
};

/* Parse "a.b.c.d/n", "x::y/n", or a bare address (full-length prefix). 0 or -1. Host bits past
 * the prefix are cleared; "::ffff:a.b.c.d/n" with n >= 96 becomes the IPv4 network a.b.c.d/(n-96).
 */
int netmask_parse(const char *s, struct netmask *m);
/* True when SA lies in M. An IPv4-mapped IPv6 SA (::ffff:a.b.c.d) counts as the IPv4 address, so
 * it matches IPv4 masks and never IPv6 ones ("::/0" means every real IPv6 client). */
bool netmask_match(const struct netmask *m, const struct sockaddr *sa);

/* Parse a listen address "HOST:PORT" or "[V6]:PORT" (HOST numeric, or "*" for all IPv4). 0 or -1.
 */
int netaddr_parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len_r);

/* Write the numeric address of SA into OUT ("127.0.0.1", "::1"; an IPv4-mapped address as the
 * IPv4 one; "?" for another family or a too small OUT); returns OUT. */
char *netaddr_ntop(const struct sockaddr *sa, char *out, size_t size);

#endif
