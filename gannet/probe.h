/* The diagnostic commands: "gannet check ACCOUNT" (the receive test of a set-up guide) and
 * "gannet probe HOST[:PORT]" (what a server offers, and its certificate and pin). */
#ifndef GANNET_PROBE_H
#define GANNET_PROBE_H

#include "config.h"

/* Connect, log in and report TLS, capabilities and the message count of A on stdout; on failure
 * say what is wrong in plain words. Returns a sysexits.h code. */
int check_account(const struct gconfig *cfg, const struct account *a);

/* Report what HOSTPORT ("host", "host:port", "[v6]:port") offers without logging in: greeting,
 * capabilities, TLS version, certificate subject, expiry, verification and SPKI pin. TLS is
 * "tls" (default, port 995), "starttls" (default for port 110) or "none"; NULL picks by port.
 * CA_FILE may be NULL. Returns a sysexits.h code. */
int probe_host(const char *hostport, const char *tls, const char *ca_file, int timeout_s);

#endif
