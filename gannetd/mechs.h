/* The SASL mechanisms gannetd knows, and when each is offered: one table for the login process
 * (CAPA, AUTH) and the auth process (which runs them), so the two never disagree. */
#ifndef GANNETD_MECHS_H
#define GANNETD_MECHS_H

#include <stdbool.h>

#include "conf.h"

enum mech_needs {
	MECH_NEEDS_NOTHING,   /* SCRAM: no secret crosses the wire */
	MECH_NEEDS_PLAINTEXT, /* a password in the clear: TLS, a trusted network, or the admin's
	                         disable_plaintext_auth = no (RFC 2595 §2.3, S-103) */
	MECH_NEEDS_TLS,       /* bearer tokens: TLS only (RFC 7628 §3, S-119) */
	MECH_NEEDS_BINDING,   /* -PLUS: TLS with channel binding data (RFC 5802 §6, S-113) */
};

struct mech_info {
	const char *name;
	enum mech_needs needs;
	bool oauth; /* needs oauth_jwks */
};

/* The known mechanisms, strongest first (the order CAPA lists them in), ending with a NULL name. */
extern const struct mech_info mech_table[];

/* MECH (any case) in the table, or NULL. */
const struct mech_info *mech_find(const char *name);

/* True when the configuration enables M (listed in auth_mechanisms; OAuth ones need oauth_jwks). */
bool mech_configured(const struct conf *c, const struct mech_info *m);

/* True when M is offered on a connection: PLAINTEXT_OK as for USER/PASS, TLS active, BINDING
 * data available. */
bool mech_offered(const struct conf *c, const struct mech_info *m, bool plaintext_ok, bool tls,
                  bool binding);

#endif
