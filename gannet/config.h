/* The fetch client's config file (~/.config/gannet/config): global settings, then [account]
 * sections of "key = value" lines, parsed strictly against a table with bounds. */
#ifndef GANNET_CONFIG_H
#define GANNET_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "climits.h"
#include "util.h"

enum tls_mode { TLS_MODE_IMPLICIT, TLS_MODE_STARTTLS, TLS_MODE_NONE };
enum auth_method {
	AUTH_AUTO,
	AUTH_USER,
	AUTH_APOP,
	AUTH_PLAIN,
	AUTH_LOGIN,
	AUTH_SCRAM_SHA1,
	AUTH_SCRAM_SHA1_PLUS,
	AUTH_SCRAM_SHA256,
	AUTH_SCRAM_SHA256_PLUS,
	AUTH_OAUTHBEARER,
	AUTH_XOAUTH2,
};
enum keep_policy { KEEP_ALL, KEEP_NONE, KEEP_DAYS };
enum oversize_policy { OVERSIZE_SKIP, OVERSIZE_HEADERS };
enum deliver_kind { DELIVER_NONE, DELIVER_MAILDIR, DELIVER_MDA, DELIVER_MBOX };

struct account {
	char name[GANNET_ACCOUNT_NAME_MAX + 1];
	unsigned line; /* of the [name] header, for messages */
	char host[GANNET_HOST_MAX + 1];
	uint16_t port; /* 0 until defaulted from the TLS mode */
	enum tls_mode tls;
	char user[USERNAME_MAX + 1];
	char *password; /* malloc'd, wiped by config_free; NULL when password_command is used */
	char password_command[GANNET_CMDLINE_MAX];
	enum auth_method auth;
	char ca_file[GANNET_PATH_MAX];
	bool have_pin;
	unsigned char pin[32]; /* SHA-256 of the server's SubjectPublicKeyInfo */
	enum deliver_kind deliver;
	char maildir[GANNET_PATH_MAX]; /* "~/" already expanded */
	char mda[GANNET_CMDLINE_MAX];
	char mbox[GANNET_PATH_MAX]; /* mboxrd file, "~/" already expanded */
	char filter[GANNET_CMDLINE_MAX];
	enum keep_policy keep;
	uint64_t keep_days;
	uint64_t max_size; /* messages above this follow OVERSIZE (LIST size) */
	enum oversize_policy oversize;
	int timeout;         /* seconds without progress */
	int pipeline;        /* commands in flight when the server offers PIPELINING */
	int command_timeout; /* MDA, filter, password_command */
};

struct gconfig {
	char path[GANNET_PATH_MAX];
	int jobs;
	char state_dir[GANNET_PATH_MAX];
	struct account *acc[GANNET_ACCOUNTS_MAX];
	size_t n_acc;
};

/* Default config path: $XDG_CONFIG_HOME/gannet/config or ~/.config/gannet/config. -1 if no HOME. */
int config_default_path(char *out, size_t size);

/* Read and parse PATH into CFG. A file holding a password must be owned by us and have no group
 * or other permission bits. On error returns -1 with E ("PATH:LINE: what", EX_CONFIG or
 * EX_NOINPUT). Free with config_free even after an error. */
int config_load(const char *path, struct gconfig *cfg, struct gerr *e);

/* Parse TEXT[0..LEN) named PATH (no file access, no permission check; for tests and -n). */
int config_parse(const char *path, const char *text, size_t len, struct gconfig *cfg,
                 struct gerr *e);

/* Release the accounts, wiping passwords first. */
void config_free(struct gconfig *cfg);

/* The account called NAME, or NULL. */
struct account *config_find(const struct gconfig *cfg, const char *name);

/* Parse a duration: "90", "90s", "5m", "2h", "1d" into seconds in [MIN, MAX]. 0 or -1. */
int parse_duration(const char *s, uint64_t min, uint64_t max, uint64_t *out_r);

/* Parse a size: "1000", "10k", "10M", "2G" (powers of 1024) into bytes in [MIN, MAX]. 0 or -1. */
int parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *out_r);

#endif
