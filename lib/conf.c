/* Config file parser driven by one table of settings with types, bounds and defaults. */
#include "conf.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "strnum.h"
#include "userdb.h"

enum conf_type { CT_STR, CT_PATH, CT_LONG, CT_BOOL, CT_LISTEN, CT_NETS, CT_ENUM, CT_DAYS };

struct conf_opt {
	const char *name;
	enum conf_type type;
	size_t off;
	size_t size; /* string buffer size */
	long min, max;
	const char *def;
	const char *const *choices; /* CT_ENUM: names, index = value */
	const char *doc;
};

static const char *const isolation_names[] = {"shared", "per-connection", NULL};
static const char *const tls_version_names[] = {"TLSv1.2", "TLSv1.3", NULL};
static const char *const log_level_names[] = {"error", "warning", "info", "debug", NULL};
/* Same order as enum uidl_source (lib/uidlsrc.h). */
static const char *const uidl_source_names[] = {"gannet", "maildir", "dovecot", "x-uidl", NULL};
/* Same order as enum maildir_lock_kind (lib/maildir.h). */
static const char *const maildir_lock_names[] = {"flock", "dotlock", NULL};

#define OFF(f) offsetof(struct conf, f)
#define SZ(f)  sizeof(((struct conf *)0)->f)

static const struct conf_opt opts[] = {
    {"listen", CT_LISTEN, OFF(listen), 0, 0, 0, "127.0.0.1:110", NULL,
     "plain POP3 listeners (STLS offered); space-separated HOST:PORT"},
    {"listen_tls", CT_LISTEN, OFF(listen_tls), 0, 0, 0, "", NULL,
     "implicit-TLS listeners (port 995); need tls_cert and tls_key"},
    {"tls_cert", CT_PATH, OFF(tls_cert), SZ(tls_cert), 0, 0, "", NULL,
     "PEM certificate chain, server certificate first"},
    {"tls_key", CT_PATH, OFF(tls_key), SZ(tls_key), 0, 0, "", NULL, "PEM private key"},
    {"tls_min_version", CT_ENUM, OFF(tls_min_version), 0, 0, 0, "TLSv1.2", tls_version_names,
     "lowest TLS version accepted"},
    {"tls_ciphers", CT_STR, OFF(tls_ciphers), SZ(tls_ciphers), 0, 0,
     "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL", NULL, "OpenSSL cipher list for TLS 1.2"},
    {"tls_ciphersuites", CT_STR, OFF(tls_ciphersuites), SZ(tls_ciphersuites), 0, 0,
     "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256", NULL,
     "OpenSSL TLS 1.3 cipher suites"},
    {"userdb", CT_PATH, OFF(userdb), SZ(userdb), 0, 0, "/etc/gannet/users", NULL,
     "passwd-file user database (Dovecot format)"},
    {"mail_location", CT_STR, OFF(mail_location), SZ(mail_location), 0, 0, "%h/Maildir", NULL,
     "Maildir path template: %u user, %n local part, %d domain, %h home"},
    {"uidl_source", CT_ENUM, OFF(uidl_source), 0, 0, 0, "gannet", uidl_source_names,
     "where UIDLs come from: gannet, maildir (Courier/qmail), dovecot (dovecot-uidlist), x-uidl"},
    {"maildir_lock", CT_ENUM, OFF(maildir_lock), 0, 0, 0, "flock", maildir_lock_names,
     "maildrop lock: flock (one host) or dotlock (NFS-safe, for a Maildir shared between hosts)"},
    {"isolation", CT_ENUM, OFF(isolation), 0, 0, 0, "shared", isolation_names,
     "shared: a few processes serve many sessions; per-connection: fresh processes per session"},
    {"login_processes", CT_LONG, OFF(login_processes), 0, 1, WORKERS_MAX, "2", NULL,
     "login processes in shared mode"},
    {"mail_processes", CT_LONG, OFF(mail_processes), 0, 1, WORKERS_MAX, "2", NULL,
     "mail processes in shared mode"},
    {"auth_threads", CT_LONG, OFF(auth_threads), 0, 1, 64, "2", NULL,
     "password hashing threads in the auth process"},
    {"trusted_networks", CT_NETS, OFF(trusted), 0, 0, 0, "127.0.0.0/8 ::1/128", NULL,
     "networks where plaintext login is allowed without TLS (may be empty)"},
    {"disable_plaintext_auth", CT_BOOL, OFF(disable_plaintext_auth), 0, 0, 0, "yes", NULL,
     "refuse USER/PASS without TLS unless the client is in trusted_networks"},
    {"idle_timeout", CT_LONG, OFF(idle_timeout), 0, IDLE_TIMEOUT_MIN, IDLE_TIMEOUT_MAX, "600", NULL,
     "autologout after this many idle seconds (RFC 1939: at least 600)"},
    {"test_idle_timeout", CT_LONG, OFF(test_idle_timeout), 0, 0, IDLE_TIMEOUT_MIN - 1, "0", NULL,
     "FOR TESTS ONLY: when > 0, replaces idle_timeout with a value below the RFC minimum"},
    {"max_bad_commands", CT_LONG, OFF(max_bad_commands), 0, BAD_COMMANDS_MIN, BAD_COMMANDS_MAX,
     "20", NULL, "bad or unknown commands before the session is closed"},
    {"max_sessions", CT_LONG, OFF(max_sessions), 0, 1, SESSIONS_MAX_MAX, "10000", NULL,
     "concurrent connections; further ones are refused with -ERR [SYS/TEMP]"},
    {"shutdown_grace", CT_LONG, OFF(shutdown_grace), 0, 0, 3600, "30", NULL,
     "seconds sessions may go on after SIGTERM before they are closed without UPDATE"},
    {"hostname", CT_STR, OFF(hostname), SZ(hostname), 0, 0, "", NULL,
     "name in the greeting (default: the system host name)"},
    {"state_dir", CT_PATH, OFF(state_dir), SZ(state_dir), 0, 0, "/run/gannetd", NULL,
     "runtime files (control socket)"},
    {"login_user", CT_STR, OFF(login_user), SZ(login_user), 0, 0, "", NULL,
     "user the login processes run as when started as root"},
    {"auth_user", CT_STR, OFF(auth_user), SZ(auth_user), 0, 0, "", NULL,
     "user the auth process runs as when started as root (must read userdb)"},
    {"mail_user", CT_STR, OFF(mail_user), SZ(mail_user), 0, 0, "", NULL,
     "user the mail processes run as when started as root, unless userdb gives a uid"},
    {"login_chroot", CT_PATH, OFF(login_chroot), SZ(login_chroot), 0, 0, "", NULL,
     "empty directory the login processes chroot into when started as root"},
    {"log_level", CT_ENUM, OFF(log_level), 0, 0, 0, "info", log_level_names,
     "error | warning | info | debug"},
    {"auth_dir", CT_PATH, OFF(auth_dir), SZ(auth_dir), 0, 0, "/var/lib/gannet", NULL,
     "account security state: app passwords, TOTP, APOP secrets (writable by auth_user)"},
    {"auth_mechanisms", CT_STR, OFF(auth_mechanisms), SZ(auth_mechanisms), 0, 0,
     "PLAIN LOGIN SCRAM-SHA-256 SCRAM-SHA-256-PLUS SCRAM-SHA-1 SCRAM-SHA-1-PLUS OAUTHBEARER "
     "XOAUTH2",
     NULL,
     "SASL mechanisms offered (PLAIN and LOGIN only with TLS or from trusted_networks; "
     "OAUTHBEARER and XOAUTH2 only with oauth_jwks set)"},
    {"refuse_8bit_headers", CT_BOOL, OFF(refuse_8bit_headers), 0, 0, 0, "yes", NULL,
     "outside UTF8 mode, refuse RETR/TOP of a message with 8-bit header bytes with [UTF8] "
     "(RFC 6856); no: send it as stored"},
    {"apop", CT_BOOL, OFF(apop), 0, 0, 0, "no", NULL,
     "offer APOP (greeting timestamp); each user still needs `gannetctl apop enable`"},
    {"auth_failure_delay", CT_LONG, OFF(auth_failure_delay), 0, 0, 60, "2", NULL,
     "seconds before the first failed login reply from an address; doubles with each failure"},
    {"auth_failure_delay_max", CT_LONG, OFF(auth_failure_delay_max), 0, 0, 600, "30", NULL,
     "cap on the failed login reply delay, seconds"},
    {"auth_ip_max_failures", CT_LONG, OFF(auth_ip_max_failures), 0, 1, 100000, "10", NULL,
     "failed logins from one address (IPv6: one /64) before it is refused"},
    {"auth_ip_block_time", CT_LONG, OFF(auth_ip_block_time), 0, 0, 86400, "900", NULL,
     "seconds an address stays refused; failures are forgotten after the same time"},
    {"auth_cache_ttl", CT_LONG, OFF(auth_cache_ttl), 0, 0, AUTH_CACHE_TTL_MAX, "300", NULL,
     "seconds a verified password is remembered by the auth process; 0 turns the cache off"},
    {"auth_cache_size", CT_LONG, OFF(auth_cache_size), 0, 0, AUTH_CACHE_SIZE_MAX, "10000", NULL,
     "verified passwords remembered at most (one per user); 0 turns the cache off"},
    {"oauth_jwks", CT_PATH, OFF(oauth_jwks), SZ(oauth_jwks), 0, 0, "", NULL,
     "JWKS file with the issuer's public keys; empty disables OAUTHBEARER and XOAUTH2"},
    {"oauth_issuer", CT_STR, OFF(oauth_issuer), SZ(oauth_issuer), 0, 0, "", NULL,
     "required iss claim of bearer tokens"},
    {"oauth_audience", CT_STR, OFF(oauth_audience), SZ(oauth_audience), 0, 0, "", NULL,
     "required aud claim of bearer tokens"},
    {"oauth_user_claim", CT_STR, OFF(oauth_user_claim), SZ(oauth_user_claim), 0, 0, "email", NULL,
     "claim that names the user (email, sub, preferred_username, ...)"},
    {"expire_days", CT_DAYS, OFF(expire_days), 0, 0, USERDB_EXPIRE_DAYS_MAX, "never", NULL,
     "RFC 2449 EXPIRE: remove retrieved messages this many days after their first RETR, at "
     "UPDATE (0: at the QUIT after it); never or 0..36500; a user's expire= may lower or raise it "
     "unless this is a number, which is then the smallest"},
    {"login_delay", CT_LONG, OFF(login_delay), 0, 0, USERDB_LOGIN_DELAY_MAX, "0", NULL,
     "RFC 2449 LOGIN-DELAY: seconds between two logins of a user (0: none); also the largest "
     "value a user's login_delay= may set"},
    {"test_update_delay_ms", CT_LONG, OFF(test_update_delay_ms), 0, 0, CONF_TEST_UPDATE_DELAY_MAX,
     "0", NULL, "FOR TESTS ONLY: milliseconds to sleep between the unlinks of UPDATE"},
    {"system_users", CT_BOOL, OFF(system_users), 0, 0, 0, "no", NULL,
     "also serve system accounts (getpwnam + PAM) that are not in userdb; needs isolation = "
     "per-connection and gannetd started as root"},
    {"pam_service", CT_STR, OFF(pam_service), SZ(pam_service), 0, 0, "gannet", NULL,
     "PAM service name for system accounts (/etc/pam.d/NAME)"},
    {"first_valid_uid", CT_LONG, OFF(first_valid_uid), 0, 1, CONF_UID_MAX, "1000", NULL,
     "lowest uid of a system account that may log in (root never can)"},
    {"last_valid_uid", CT_LONG, OFF(last_valid_uid), 0, 0, CONF_UID_MAX, "0", NULL,
     "highest uid of a system account that may log in (0: no upper bound)"},
    {"system_mail_location", CT_STR, OFF(system_mail_location), SZ(system_mail_location), 0, 0,
     "mbox:/var/mail/%u", NULL,
     "mailbox of a system account: mbox:PATH (an mbox file) or a Maildir template"},
    {"mail_privileged_group", CT_STR, OFF(mail_privileged_group), SZ(mail_privileged_group), 0, 0,
     "mail", NULL,
     "extra group of a system account's mail process, to create dotlocks in /var/mail (empty: "
     "none)"},
};

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

/* Split V on spaces into at most MAX words; returns the count or -1 when there are more. */
static int split_words(char *v, char **words, size_t max)
{
	size_t n = 0;
	char *save = NULL;

	for (char *w = strtok_r(v, " \t", &save); w != NULL; w = strtok_r(NULL, " \t", &save)) {
		if (n == max)
			return -1;
		words[n++] = w;
	}
	return (int)n;
}

static int set_opt(const struct conf_opt *o, struct conf *c, char *value, char *err, size_t errsize)
{
	char *base = (char *)c + o->off;
	char *words[CONF_LIST_MAX];
	int n;

	switch (o->type) {
	case CT_STR:
	case CT_PATH:
		if (strlen(value) >= o->size) {
			snprintf(err, errsize, "%s: value too long (max %zu)", o->name,
			         o->size - 1);
			return -1;
		}
		if (o->type == CT_PATH && value[0] != '\0' && value[0] != '/') {
			snprintf(err, errsize, "%s: must be an absolute path", o->name);
			return -1;
		}
		memcpy(base, value, strlen(value) + 1);
		return 0;
	case CT_DAYS:
		if (strcmp(value, "never") == 0) {
			*(long *)(void *)base = CONF_EXPIRE_NEVER;
			return 0;
		}
		/* FALLTHROUGH */
	case CT_LONG: {
		uint64_t v;

		if (strnum_parse(value, (uint64_t)o->min, (uint64_t)o->max, &v) < 0) {
			snprintf(err, errsize, "%s: expected %sa whole number from %ld to %ld",
			         o->name, o->type == CT_DAYS ? "never or " : "", o->min, o->max);
			return -1;
		}
		*(long *)(void *)base = (long)v;
		return 0;
	}
	case CT_BOOL:
		if (strcmp(value, "yes") == 0)
			*(bool *)(void *)base = true;
		else if (strcmp(value, "no") == 0)
			*(bool *)(void *)base = false;
		else {
			snprintf(err, errsize, "%s: expected yes or no", o->name);
			return -1;
		}
		return 0;
	case CT_ENUM:
		for (int i = 0; o->choices[i] != NULL; i++) {
			if (strcmp(value, o->choices[i]) == 0) {
				*(int *)(void *)base = i;
				return 0;
			}
		}
		snprintf(err, errsize, "%s: unknown value \"%s\"", o->name, value);
		return -1;
	case CT_LISTEN: {
		struct conf_listen *l = (struct conf_listen *)(void *)base;
		size_t *count = (o->off == OFF(listen)) ? &c->n_listen : &c->n_listen_tls;

		n = split_words(value, words, CONF_LIST_MAX);
		if (n < 0) {
			snprintf(err, errsize, "%s: more than %d addresses", o->name,
			         CONF_LIST_MAX);
			return -1;
		}
		for (int i = 0; i < n; i++) {
			if (netaddr_parse_listen(words[i], &l[i].addr, &l[i].addrlen) < 0 ||
			    strlen(words[i]) >= sizeof(l[i].text)) {
				snprintf(err, errsize, "%s: bad address \"%s\" (want HOST:PORT)",
				         o->name, words[i]);
				return -1;
			}
			snprintf(l[i].text, sizeof(l[i].text), "%s", words[i]);
		}
		*count = (size_t)n;
		return 0;
	}
	case CT_NETS:
		n = split_words(value, words, CONF_LIST_MAX);
		if (n < 0) {
			snprintf(err, errsize, "%s: more than %d networks", o->name, CONF_LIST_MAX);
			return -1;
		}
		for (int i = 0; i < n; i++) {
			if (netmask_parse(words[i], &c->trusted[i]) < 0) {
				snprintf(err, errsize, "%s: bad network \"%s\"", o->name, words[i]);
				return -1;
			}
		}
		c->n_trusted = (size_t)n;
		return 0;
	}
	return -1;
}

static const struct conf_opt *find_opt(const char *name)
{
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
		if (strcmp(opts[i].name, name) == 0)
			return &opts[i];
	return NULL;
}

int conf_parse(const char *file, const char *text, size_t len, struct conf *conf, char *err,
               size_t errsize)
{
	char line[CONF_LINE_MAX + 1];
	char msg[512];
	size_t pos = 0, lineno = 0;
	bool seen[sizeof(opts) / sizeof(opts[0])] = {false};

	memset(conf, 0, sizeof(*conf));
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		char def[256];

		snprintf(def, sizeof(def), "%s", opts[i].def);
		if (set_opt(&opts[i], conf, def, msg, sizeof(msg)) < 0)
			fatalx("built-in default of %s is invalid: %s", opts[i].name, msg);
	}

	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t l = nl ? (size_t)(nl - (text + pos)) : len - pos;
		char *s, *eq, *key, *value;
		const struct conf_opt *o;

		lineno++;
		if (l > CONF_LINE_MAX) {
			snprintf(err, errsize, "%s:%zu: line longer than %d bytes", file, lineno,
			         CONF_LINE_MAX);
			return -1;
		}
		memcpy(line, text + pos, l);
		line[l] = '\0';
		pos += l + (nl ? 1 : 0);
		if (memchr(line, '\0', l) != NULL) {
			snprintf(err, errsize, "%s:%zu: NUL byte in line", file, lineno);
			return -1;
		}
		s = trim(line);
		if (*s == '#' || *s == '\0')
			continue;
		eq = strchr(s, '=');
		if (eq == NULL) {
			snprintf(err, errsize, "%s:%zu: expected \"name = value\"", file, lineno);
			return -1;
		}
		*eq = '\0';
		key = trim(s);
		value = trim(eq + 1);
		o = find_opt(key);
		if (o == NULL) {
			snprintf(err, errsize, "%s:%zu: unknown setting \"%.64s\"", file, lineno,
			         key);
			return -1;
		}
		if (seen[o - opts]) {
			snprintf(err, errsize, "%s:%zu: %s is set twice", file, lineno, key);
			return -1;
		}
		seen[o - opts] = true;
		if (set_opt(o, conf, value, msg, sizeof(msg)) < 0) {
			snprintf(err, errsize, "%s:%zu: %s", file, lineno, msg);
			return -1;
		}
	}

	conf->tls_min_version = conf->tls_min_version == 0 ? TLS1_2_VERSION : TLS1_3_VERSION;
	conf->have_tls = conf->tls_cert[0] != '\0';
	if (conf->have_tls != (conf->tls_key[0] != '\0')) {
		snprintf(err, errsize, "%s: tls_cert and tls_key must be set together", file);
		return -1;
	}
	if (conf->n_listen_tls > 0 && !conf->have_tls) {
		snprintf(err, errsize, "%s: listen_tls needs tls_cert and tls_key", file);
		return -1;
	}
	if (conf->n_listen + conf->n_listen_tls == 0) {
		snprintf(err, errsize, "%s: no listen or listen_tls address", file);
		return -1;
	}
	if (conf->system_users && conf->isolation != ISOLATION_PER_CONNECTION) {
		/* Each system account's mail runs under its own uid: one process per session. */
		snprintf(err, errsize, "%s: system_users = yes needs isolation = per-connection",
		         file);
		return -1;
	}
	if (conf->hostname[0] == '\0' && gethostname(conf->hostname, sizeof(conf->hostname)) < 0)
		snprintf(conf->hostname, sizeof(conf->hostname), "localhost");
	conf->hostname[sizeof(conf->hostname) - 1] = '\0';
	for (char *p = conf->hostname; *p; p++)
		if (*p <= ' ' || *p >= 0x7f || *p == '<' || *p == '>' || *p == '[')
			*p = '_';
	return 0;
}

char *conf_read_file(const char *file, size_t *len_r, char *err, size_t errsize)
{
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char *buf;
	size_t got = 0;

	if (fd < 0) {
		snprintf(err, errsize, "%s: %s", file, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > CONF_FILE_MAX) {
		snprintf(err, errsize, "%s: not a regular file of at most %d bytes", file,
		         CONF_FILE_MAX);
		close(fd);
		return NULL;
	}
	buf = malloc(CONF_FILE_MAX + 1);
	if (buf == NULL)
		fatal("malloc");
	for (;;) {
		ssize_t n = read(fd, buf + got, CONF_FILE_MAX + 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errsize, "%s: %s", file, strerror(errno));
			free(buf);
			close(fd);
			return NULL;
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (got > CONF_FILE_MAX) {
			snprintf(err, errsize, "%s: larger than %d bytes", file, CONF_FILE_MAX);
			free(buf);
			close(fd);
			return NULL;
		}
	}
	close(fd);
	buf[got] = '\0';
	*len_r = got;
	return buf;
}

long conf_idle_timeout(const struct conf *conf)
{
	return conf->test_idle_timeout > 0 ? conf->test_idle_timeout : conf->idle_timeout;
}

void conf_print_defaults(void)
{
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		printf("# %s", opts[i].doc);
		if (opts[i].type == CT_LONG)
			printf(" (%ld..%ld)", opts[i].min, opts[i].max);
		printf("\n%s = %s\n\n", opts[i].name, opts[i].def);
	}
}
