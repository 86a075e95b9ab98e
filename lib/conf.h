/* gannetd.conf: a table of typed settings with bounds (Redis style), parsed from "key = value". */
#ifndef GANNET_CONF_H
#define GANNET_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "gannet_limits.h"
#include "netaddr.h"

enum conf_isolation { ISOLATION_SHARED, ISOLATION_PER_CONNECTION };

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
	int uidl_source; /* enum uidl_source */
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
	long auth_failure_delay;
	long auth_failure_delay_max;
	long auth_ip_max_failures;
	long auth_ip_block_time;
	char oauth_jwks[GANNET_PATH_MAX];
	char oauth_issuer[256];
	char oauth_audience[256];
	char oauth_user_claim[64];
	bool have_tls;
};

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
