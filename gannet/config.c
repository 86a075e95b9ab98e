/* Strict parser of the fetch client's config file: unknown keys, duplicates, bad values and loose
 * permissions on a file holding a password are all errors with "file:line: message". */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "strnum.h"
#include "tlsclient.h"

enum opt_type {
	T_STR,
	T_CMD,
	T_PATH,
	T_SECRET,
	T_PORT,
	T_TLS,
	T_AUTH,
	T_KEEP,
	T_OVERSIZE,
	T_SIZE,
	T_INT,
	T_DELIVERY
};

struct opt {
	const char *name;
	enum opt_type type;
	size_t off;  /* offset in struct account */
	size_t size; /* buffer size for strings */
	uint64_t min, max;
};

#define A(f) offsetof(struct account, f), sizeof(((struct account *)0)->f)

static const struct opt account_opts[] = {
    {"host", T_STR, A(host), 1, 0},
    {"port", T_PORT, A(port), 1, 65535},
    {"tls", T_TLS, A(tls), 0, 0},
    {"user", T_STR, A(user), 1, 0},
    {"password", T_SECRET, A(password), 1, PASSWORD_MAX},
    {"password_command", T_CMD, A(password_command), 1, 0},
    {"auth", T_AUTH, A(auth), 0, 0},
    {"ca_file", T_PATH, A(ca_file), 1, 0},
    {"pin", T_STR, A(pin), 0, 0},
    {"maildir", T_PATH, A(maildir), 1, 0},
    {"mda", T_CMD, A(mda), 1, 0},
    {"mbox", T_PATH, A(mbox), 1, 0},
    {"delivery", T_DELIVERY, 0, 0, 0, 0},
    {"filter", T_CMD, A(filter), 1, 0},
    {"keep", T_KEEP, A(keep), 1, 36500},
    {"max_size", T_SIZE, A(max_size), 1, GANNET_MSG_LIMIT_MAX},
    {"oversize", T_OVERSIZE, A(oversize), 0, 0},
    {"timeout", T_INT, A(timeout), 1, GANNET_TIMEOUT_MAX},
    {"pipeline", T_INT, A(pipeline), 1, GANNET_PIPELINE_MAX},
    {"command_timeout", T_INT, A(command_timeout), 1, GANNET_CMD_TIMEOUT_MAX},
};

#define NOPTS (sizeof(account_opts) / sizeof(account_opts[0]))

int config_default_path(char *out, size_t size)
{
	const char *x = getenv("XDG_CONFIG_HOME");

	if (x != NULL && x[0] == '/')
		return fmt_path(out, size, "%s/gannet/config", x);
	return expand_home("~/.config/gannet/config", out, size);
}

static int suffixed(const char *s, const char *units, const uint64_t *mult, uint64_t min,
                    uint64_t max, uint64_t *out_r)
{
	size_t len = strlen(s);
	uint64_t m = 1, v;
	const char *u;

	if (len > 1 && (u = strchr(units, s[len - 1])) != NULL) {
		m = mult[u - units];
		len--;
	}
	if (strnum_u64(s, len, 0, UINT64_MAX / m, &v) < 0)
		return -1;
	v *= m;
	if (v < min || v > max)
		return -1;
	*out_r = v;
	return 0;
}

int parse_duration(const char *s, uint64_t min, uint64_t max, uint64_t *out_r)
{
	static const uint64_t mult[] = {1, 60, 3600, 86400};

	return suffixed(s, "smhd", mult, min, max, out_r);
}

int parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *out_r)
{
	static const uint64_t mult[] = {1024, 1024, 1024 * 1024, 1024ULL * 1024 * 1024};

	return suffixed(s, "kKMG", mult, min, max, out_r);
}

/* Pick one of WORDS (NULL-terminated); its index or -1. */
static int word_index(const char *v, const char *const *words)
{
	for (int i = 0; words[i] != NULL; i++)
		if (strcmp(v, words[i]) == 0)
			return i;
	return -1;
}

static const char *set_value(struct account *a, const struct opt *o, const char *v)
{
	static const char *const tls_words[] = {"tls", "starttls", "none", NULL};
	/* In the order of enum auth_method. */
	static const char *const auth_words[] = {"auto",
	                                         "user",
	                                         "apop",
	                                         "plain",
	                                         "login",
	                                         "scram-sha-1",
	                                         "scram-sha-1-plus",
	                                         "scram-sha-256",
	                                         "scram-sha-256-plus",
	                                         "oauthbearer",
	                                         "xoauth2",
	                                         NULL};
	static const char *const over_words[] = {"skip", "headers", NULL};
	char *field = (char *)a + o->off;
	size_t vl = strlen(v);
	uint64_t n;
	int w;

	switch (o->type) {
	case T_STR:
	case T_CMD:
	case T_PATH:
		if (strcmp(o->name, "pin") == 0) {
			if (tlsc_pin_parse(v, a->pin) < 0)
				return "pin must be sha256//BASE64 (as 'gannet probe' prints it)";
			a->have_pin = true;
			return NULL;
		}
		if (vl == 0)
			return "empty value";
		if (o->type == T_PATH) {
			if (expand_home(v, field, o->size) < 0)
				return "path too long (or ~ used without HOME)";
			return NULL;
		}
		if (vl >= o->size)
			return "value too long";
		if (strcmp(o->name, "host") == 0 && strpbrk(v, " /\\") != NULL)
			return "not a host name";
		memcpy(field, v, vl + 1);
		return NULL;
	case T_SECRET:
		if (vl < o->min || vl > o->max)
			return "password length out of range";
		a->password = strdup(v);
		return a->password ? NULL : "out of memory";
	case T_PORT:
		if (strnum_parse(v, o->min, o->max, &n) < 0)
			return "port must be 1..65535";
		a->port = (uint16_t)n;
		return NULL;
	case T_TLS:
		if ((w = word_index(v, tls_words)) < 0)
			return "tls must be tls, starttls or none";
		a->tls = (enum tls_mode)w;
		return NULL;
	case T_AUTH:
		if ((w = word_index(v, auth_words)) < 0)
			return "auth must be auto, user, apop, plain, login, scram-sha-256(-plus), "
			       "scram-sha-1(-plus), oauthbearer or xoauth2";
		a->auth = (enum auth_method)w;
		return NULL;
	case T_OVERSIZE:
		if ((w = word_index(v, over_words)) < 0)
			return "oversize must be skip or headers";
		a->oversize = (enum oversize_policy)w;
		return NULL;
	case T_KEEP:
		if (strcmp(v, "yes") == 0)
			a->keep = KEEP_ALL;
		else if (strcmp(v, "no") == 0)
			a->keep = KEEP_NONE;
		else if (parse_duration(v, 86400, 36500ULL * 86400, &n) == 0 && n % 86400 == 0) {
			a->keep = KEEP_DAYS;
			a->keep_days = n / 86400;
		} else if (strnum_parse(v, o->min, o->max, &n) == 0) {
			a->keep = KEEP_DAYS;
			a->keep_days = n;
		} else
			return "keep must be yes, no, or a number of days (30 or 30d)";
		return NULL;
	case T_SIZE:
		if (parse_size(v, o->min, o->max, &a->max_size) < 0)
			return "max_size must be a size like 20M (at most 64G)";
		return NULL;
	case T_DELIVERY:
		/* delivery = maildir:PATH | mbox:PATH | mda:COMMAND, the one-key spelling of the
		 * maildir, mbox and mda settings. */
		if (strncmp(v, "maildir:", 8) == 0 && v[8] != '\0')
			return expand_home(v + 8, a->maildir, sizeof(a->maildir)) < 0
			           ? "path too long"
			           : NULL;
		if (strncmp(v, "mbox:", 5) == 0 && v[5] != '\0')
			return expand_home(v + 5, a->mbox, sizeof(a->mbox)) < 0 ? "path too long"
			                                                        : NULL;
		if (strncmp(v, "mda:", 4) == 0 && v[4] != '\0') {
			if (vl - 4 >= sizeof(a->mda))
				return "value too long";
			memcpy(a->mda, v + 4, vl - 3);
			return NULL;
		}
		return "delivery must be maildir:PATH, mbox:PATH or mda:COMMAND";
	case T_INT:
		if (strnum_parse(v, o->min, o->max, &n) < 0)
			return "number out of range";
		*(int *)(void *)field = (int)n;
		return NULL;
	}
	return "internal error";
}

/* Unquote VALUE in place: "..." with \" and \\ escapes, or the bare trimmed text. */
static const char *unquote(char *v)
{
	char *o = v, *p;

	if (v[0] != '"')
		return NULL;
	for (p = v + 1; *p != '"'; p++) {
		if (*p == '\0')
			return "unterminated quoted value";
		if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
			p++;
		*o++ = *p;
	}
	if (p[1] != '\0')
		return "text after the closing quote";
	*o = '\0';
	return NULL;
}

static bool valid_account_name(const char *s, size_t len)
{
	if (len == 0 || len > GANNET_ACCOUNT_NAME_MAX || s[0] == '.' || s[0] == '-')
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '_' || s[i] == '-'))
			return false;
	return true;
}

static struct account *new_account(struct gconfig *cfg, const char *name, size_t len, unsigned line,
                                   const char **why)
{
	struct account *a;

	if (!valid_account_name(name, len))
		return *why =
		           "account names are 1-64 of A-Z a-z 0-9 . _ - (not starting with . or -)",
		       NULL;
	for (size_t i = 0; i < cfg->n_acc; i++)
		if (strlen(cfg->acc[i]->name) == len && memcmp(cfg->acc[i]->name, name, len) == 0)
			return *why = "duplicate account", NULL;
	if (cfg->n_acc >= GANNET_ACCOUNTS_MAX)
		return *why = "too many accounts", NULL;
	a = calloc(1, sizeof(*a));
	if (a == NULL)
		return *why = "out of memory", NULL;
	memcpy(a->name, name, len);
	a->line = line;
	a->timeout = GANNET_TIMEOUT_DEFAULT;
	a->pipeline = GANNET_PIPELINE_DEFAULT;
	a->command_timeout = GANNET_CMD_TIMEOUT_DEFAULT;
	cfg->acc[cfg->n_acc++] = a;
	return a;
}

static const char *check_account(struct account *a)
{
	if (a->host[0] == '\0')
		return "host is missing";
	if (a->user[0] == '\0')
		return "user is missing";
	if ((a->password != NULL) == (a->password_command[0] != '\0'))
		return "give exactly one of password and password_command";
	if ((a->maildir[0] != '\0') + (a->mda[0] != '\0') + (a->mbox[0] != '\0') != 1)
		return "give exactly one delivery target: maildir, mbox or mda (or delivery = ...)";
	if (a->have_pin && a->tls == TLS_MODE_NONE)
		return "pin needs TLS (tls = tls or starttls)";
	if (a->ca_file[0] != '\0' && a->tls == TLS_MODE_NONE)
		return "ca_file needs TLS (tls = tls or starttls)";
	if ((a->auth == AUTH_SCRAM_SHA1_PLUS || a->auth == AUTH_SCRAM_SHA256_PLUS) &&
	    a->tls == TLS_MODE_NONE)
		return "a -plus mechanism binds to TLS: it needs tls = tls or starttls";
	a->deliver = a->maildir[0] != '\0' ? DELIVER_MAILDIR
	             : a->mbox[0] != '\0'  ? DELIVER_MBOX
	                                   : DELIVER_MDA;
	if (a->port == 0)
		a->port = a->tls == TLS_MODE_IMPLICIT ? 995 : 110;
	if (a->max_size == 0)
		a->max_size = GANNET_MSG_LIMIT_DEFAULT;
	return NULL;
}

static int set_global(struct gconfig *cfg, const char *k, const char *v, const char **why)
{
	uint64_t n;

	if (strcmp(k, "jobs") == 0) {
		if (strnum_parse(v, 1, GANNET_JOBS_MAX, &n) < 0)
			return *why = "jobs must be 1..32", -1;
		cfg->jobs = (int)n;
	} else if (strcmp(k, "state_dir") == 0) {
		if (expand_home(v, cfg->state_dir, sizeof(cfg->state_dir)) < 0)
			return *why = "path too long", -1;
	} else
		return *why = "unknown global setting (account settings go after [name])", -1;
	return 0;
}

int config_parse(const char *path, const char *text, size_t len, struct gconfig *cfg,
                 struct gerr *e)
{
	struct account *cur = NULL;
	unsigned seen[NOPTS] = {0}, gseen = 0, lineno = 0;
	char line[CONF_LINE_MAX + 1];
	const char *why = NULL;
	size_t pos = 0;

	cfg->jobs = GANNET_JOBS_DEFAULT;
	if (fmt_path(cfg->path, sizeof(cfg->path), "%s", path) < 0)
		cfg->path[0] = '\0';
	while (pos < len && why == NULL) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t ll = nl ? (size_t)(nl - text - pos) : len - pos;
		char *k, *v, *eq, *end;

		lineno++;
		if (ll > CONF_LINE_MAX) {
			why = "line too long";
			break;
		}
		memcpy(line, text + pos, ll);
		line[ll] = '\0';
		pos += ll + 1;
		if (memchr(line, '\0', ll) != NULL || strchr(line, '\r') != NULL) {
			why = "NUL or CR in the line";
			break;
		}
		for (k = line; *k == ' ' || *k == '\t'; k++)
			;
		for (end = k + strlen(k); end > k && (end[-1] == ' ' || end[-1] == '\t'); end--)
			;
		*end = '\0';
		if (*k == '\0' || *k == '#')
			continue;
		if (*k == '[') {
			if (end[-1] != ']' || end - k < 3) {
				why = "section header must be [name]";
				break;
			}
			if (cur != NULL && (why = check_account(cur)) != NULL) {
				lineno = cur->line;
				break;
			}
			cur = new_account(cfg, k + 1, (size_t)(end - k - 2), lineno, &why);
			memset(seen, 0, sizeof(seen));
			continue;
		}
		if ((eq = strchr(k, '=')) == NULL) {
			why = "expected key = value";
			break;
		}
		for (end = eq; end > k && (end[-1] == ' ' || end[-1] == '\t'); end--)
			;
		*end = '\0';
		for (v = eq + 1; *v == ' ' || *v == '\t'; v++)
			;
		if ((why = unquote(v)) != NULL)
			break;
		if (cur == NULL) {
			if (gseen & (strcmp(k, "jobs") == 0 ? 1u : 2u)) {
				why = "duplicate setting";
				break;
			}
			gseen |= strcmp(k, "jobs") == 0 ? 1u : 2u;
			set_global(cfg, k, v, &why);
			continue;
		}
		size_t i;
		for (i = 0; i < NOPTS && strcmp(account_opts[i].name, k) != 0; i++)
			;
		if (i == NOPTS)
			why = "unknown setting";
		else if (seen[i]++)
			why = "duplicate setting";
		else
			why = set_value(cur, &account_opts[i], v);
	}
	if (why == NULL && cur != NULL && (why = check_account(cur)) != NULL)
		lineno = cur->line;
	if (why == NULL && cfg->n_acc == 0) {
		why = "no [account] section";
		lineno = 0;
	}
	if (why == NULL && cfg->state_dir[0] == '\0') {
		const char *x = getenv("XDG_STATE_HOME");
		int r = (x != NULL && x[0] == '/')
		            ? fmt_path(cfg->state_dir, sizeof(cfg->state_dir), "%s/gannet", x)
		            : expand_home("~/.local/state/gannet", cfg->state_dir,
		                          sizeof(cfg->state_dir));
		if (r < 0)
			why = "cannot find a state directory: set state_dir or HOME";
	}
	explicit_bzero(line, sizeof(line));
	if (why == NULL)
		return 0;
	gerr_set(e, EX_CONFIG, "%s:%u: %s", path, lineno, why);
	return -1;
}

int config_load(const char *path, struct gconfig *cfg, struct gerr *e)
{
	struct stat st;
	char *text;
	ssize_t n;
	int fd, r;
	bool secret = false;

	memset(cfg, 0, sizeof(*cfg));
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fstat(fd, &st) < 0) {
		gerr_sys(e, errno == ENOENT ? EX_NOINPUT : EX_CONFIG, "cannot open %s", path);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > GANNET_CONF_FILE_MAX) {
		close(fd);
		gerr_set(e, EX_CONFIG, "%s: not a regular file of at most 1 MB", path);
		return -1;
	}
	text = malloc((size_t)st.st_size + 1);
	n = text ? read(fd, text, (size_t)st.st_size) : -1;
	close(fd);
	if (n != st.st_size) {
		gerr_sys(e, EX_CONFIG, "cannot read %s", path);
		free(text);
		return -1;
	}
	r = config_parse(path, text, (size_t)n, cfg, e);
	explicit_bzero(text, (size_t)n);
	free(text);
	for (size_t i = 0; i < cfg->n_acc; i++)
		secret |= cfg->acc[i]->password != NULL;
	if (r == 0 && secret && ((st.st_mode & 077) != 0 || st.st_uid != getuid())) {
		gerr_set(e, EX_CONFIG,
		         "%s holds a password but others can read it (mode %04o, owner %u); run "
		         "chmod 600 %s, or use password_command",
		         path, (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid, path);
		return -1;
	}
	return r;
}

void config_free(struct gconfig *cfg)
{
	for (size_t i = 0; i < cfg->n_acc; i++) {
		struct account *a = cfg->acc[i];
		if (a->password != NULL) {
			explicit_bzero(a->password, strlen(a->password));
			free(a->password);
		}
		explicit_bzero(a, sizeof(*a));
		free(a);
	}
	cfg->n_acc = 0;
}

struct account *config_find(const struct gconfig *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n_acc; i++)
		if (strcmp(cfg->acc[i]->name, name) == 0)
			return cfg->acc[i];
	return NULL;
}
