/* The PAM workers of the auth process: small processes that keep root (pam_unix must read
 * /etc/shadow) and do nothing but getpwnam_r and one PAM conversation per request. The auth
 * process talks to them over socketpairs (lib/ipc.h framing), one per auth thread, so a slow
 * PAM check blocks one thread, like a slow hash. See docs/security.md. */
#ifndef GANNETD_PAMWORKER_H
#define GANNETD_PAMWORKER_H

#include <stddef.h>
#include <sys/types.h>

#include "conf.h"
#include "gannet_limits.h"

/* Seconds one PAM conversation may take (a module waiting on a dead LDAP server): the worker's
 * child is killed after it and the login gets [SYS/TEMP]. */
#define PAMW_TIMEOUT 20

/* Workers started at most: one per auth thread. */
#define PAMW_MAX 64

enum pamw_result {
	PAMW_OK = 0,
	PAMW_FAIL = 1,     /* wrong password, expired or refused account */
	PAMW_UNKNOWN = 2,  /* no such account, or its uid is outside first/last_valid_uid */
	PAMW_TEMPFAIL = 3, /* PAM or NSS error, timeout, worker gone */
};

/* The account a successful check vouches for. */
struct pamw_account {
	uid_t uid;
	gid_t gid;
	char home[GANNET_PATH_MAX];
};

/* Fork N (1..PAMW_MAX) workers for CONF (kept by reference); call while still root and before
 * any thread starts. Fatal on failure: system_users cannot work without them. */
void pamw_start(const struct conf *conf, size_t n);

/* Check USER's password PW (PWLEN bytes) with PAM from client IP; blocks up to PAMW_TIMEOUT
 * seconds and some. Safe from any thread. Fills *ACCT on PAMW_OK; *REASON_R (static) says why
 * for the log. */
enum pamw_result pamw_check(const char *user, const char *pw, size_t pwlen, const char *ip,
                            struct pamw_account *acct, const char **reason_r);

#endif
