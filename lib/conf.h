/* gannetd.conf: a table of typed settings with bounds (Redis style), parsed from "key = value". */
#ifndef GANNET_CONF_H
#define GANNET_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "gannet_limits.h"
#include "netaddr.h"

enum conf_isolation { ISOLATION_SHARED, ISOLATION_PER_CONNECTION };

/* Bounds of the verified-credential cache of the auth process (gannetd/authcache.c).
 * A day at most: a cached entry lets a copy of the auth process's memory be guessed against at
 * HMAC speed instead of the slow hash, so the window must stay short whatever the admin sets. */
#define AUTH_CACHE_TTL_MAX 86400
/* One entry (48 bytes) per user who logged in within the TTL: a million users cost 48 MB of the
 * auth process, an upper bound that still fits any machine that serves that many. */
#define AUTH_CACHE_SIZE_MAX 1000000

struct conf_listen {
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char text[64];
};

struct conf {
	struct conf_listen listen[CONF_LIST_MAX];
	size_t n_listen;
	struct conf_listen listen_tls[CONF_LIST_MAX];
	size_t n_listen_tls;
	char tls_cert[GANNET_PATH_MAX];
	char tls_key[GANNET_PATH_MAX];
	int tls_min_version; /* TLS1_2_VERSION or TLS1_3_VERSION */
	char tls_ciphers[256];
	char tls_ciphersuites[256];
	char userdb[GANNET_PATH_MAX];
	char mail_location[GANNET_PATH_MAX];
	int uidl_source;  /* enum uidl_source */
	int maildir_lock; /* enum maildir_lock_kind */
	enum conf_isolation isolation;
	long login_processes;
	long mail_processes;
	long auth_threads;
	struct netmask trusted[CONF_LIST_MAX];
	size_t n_trusted;
	bool disable_plaintext_auth;
	long idle_timeout;
	long test_idle_timeout;
	long max_bad_commands;
	long max_sessions;
	long shutdown_grace;
	char hostname[128];
	char state_dir[GANNET_PATH_MAX];
	char login_user[64];
	char mail_user[64];
	char auth_user[64];
	char login_chroot[GANNET_PATH_MAX];
	int log_level; /* enum log_level */
	char auth_dir[GANNET_PATH_MAX];
	char auth_mechanisms[256];
	bool apop;
	bool refuse_8bit_headers; /* RFC 6856 §2.1: [UTF8] for 8-bit headers outside UTF8 mode */
	long auth_failure_delay;
	long auth_failure_delay_max;
	long auth_ip_max_failures;
	long auth_ip_block_time;
	long auth_cache_ttl;  /* seconds; 0 = no cache */
	long auth_cache_size; /* entries; 0 = no cache */
	char oauth_jwks[GANNET_PATH_MAX];
	char oauth_issuer[256];
	char oauth_audience[256];
	char oauth_user_claim[64];
	long expire_days;          /* RFC 2449 EXPIRE: days, or CONF_EXPIRE_NEVER */
	long login_delay;          /* RFC 2449 LOGIN-DELAY: seconds, 0 = none */
	long test_update_delay_ms; /* tests only: pause between the unlinks of UPDATE */
	/* System accounts (PAM, mbox): see docs/operations.md "System accounts and mbox" */
	bool system_users;
	char pam_service[64];
	long first_valid_uid;
	long last_valid_uid; /* 0: no upper bound */
	char system_mail_location[GANNET_PATH_MAX];
	char mail_privileged_group[64];
	bool have_tls;
};

/* expire_days = never (the default): the server never deletes mail by itself. */
#define CONF_EXPIRE_NEVER (-1L)
/* Longest test_update_delay_ms: one second between unlinks already makes a crash test of a few
 * messages take seconds; the knob exists to widen the UPDATE window, never to stall a server. */
#define CONF_TEST_UPDATE_DELAY_MAX 1000
/* Largest uid a system account may have: (uid_t)-1 and -2 mean "none" to the kernel and NFS. */
#define CONF_UID_MAX 4294967293L

/* Parse TEXT (LEN bytes, the whole config file) named FILE into CONF, starting from defaults.
 * On error returns -1 and writes "FILE:LINE: message" into ERR. */
int conf_parse(const char *file, const char *text, size_t len, struct conf *conf, char *err,
               size_t errsize);

/* Read FILE into a malloc'd, NUL-terminated buffer (at most CONF_FILE_MAX bytes). NULL with ERR. */
char *conf_read_file(const char *file, size_t *len_r, char *err, size_t errsize);

/* The effective autologout timeout (test_idle_timeout when set, else idle_timeout). */
long conf_idle_timeout(const struct conf *conf);

/* Write every setting and its default as documentation lines (gannetd -N). */
void conf_print_defaults(void);

/* Largest config file accepted; it travels to child processes inside one IPC message. */
#define CONF_FILE_MAX (IPC_MSG_MAX - 1024)

#endif
