/* gannetctl: the admin tool. Commands are declared as grammar strings (smtpctl style) that both
 * parse the command line and print the help. */
#include <err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gannetctl.h"

/* Grammar tokens: lowercase words are literal, UPPERCASE words are positional arguments,
 * "[-s|--scheme SCHEME]" is an option taking a value, "[--password-stdin]" a flag. */
struct command {
	const char *grammar;
	int (*fn)(const struct cmd_args *a);
	bool user_file; /* takes -c / -f */
	const char *help;
};

static int cmd_help(const struct cmd_args *a);

static const struct command commands[] = {
    {"user add NAME [-s|--scheme SCHEME] [--uid UID] [--gid GID] [--home DIR] [--mail PATH] "
     "[--password-stdin] [--force]",
     cmd_user_add, true, "add a user; --uid and --gid go together; PATH may use %u %n %d %h"},
    {"user passwd NAME [-s|--scheme SCHEME] [--password-stdin] [--force]", cmd_user_passwd, true,
     "set a user's password"},
    {"user del NAME", cmd_user_del, true, "delete a user (every line for NAME)"},
    {"user list", cmd_user_list, true, "print each user with home and mail path"},
    {"pw [-s|--scheme SCHEME] [--password-stdin]", cmd_pw, false,
     "print a password hash for a user file line"},
    {"app-password add USER [--name NAME] [--auth-dir DIR]", cmd_apppw_add, true,
     "create app password NAME (required) for USER and print it, once"},
    {"app-password list [USER] [--auth-dir DIR]", cmd_apppw_list, true,
     "list app passwords with creation and last use"},
    {"app-password revoke USER NAME [--auth-dir DIR]", cmd_apppw_revoke, true,
     "delete USER's app password NAME"},
    {"totp enable USER [--code CODE] [--auth-dir DIR]", cmd_totp_enable, true,
     "print a TOTP secret as URI and QR code; a correct code activates it"},
    {"totp disable USER [--auth-dir DIR]", cmd_totp_disable, true, "remove USER's TOTP"},
    {"totp recovery USER [--auth-dir DIR]", cmd_totp_recovery, true,
     "print a new set of recovery codes; the old ones stop working"},
    {"totp status USER [--auth-dir DIR]", cmd_totp_status, true, "off, pending or active"},
    {"apop enable USER [--password-stdin] [--auth-dir DIR]", cmd_apop_enable, true,
     "set USER's APOP secret"},
    {"apop disable USER [--auth-dir DIR]", cmd_apop_disable, true, "remove USER's APOP secret"},
    {"penalty list", cmd_penalty_list, true,
     "addresses and accounts with recent failed logins (from the running gannetd)"},
    {"penalty clear [WHAT]", cmd_penalty_clear, true,
     "forget the failures of WHAT (an address, address/64 or user), or of everyone"},
    {"uidl list USER [-c|--config CONFIG] [--source SOURCE]", cmd_uidl_list, true,
     "print \"N UIDL\" as a POP3 client would see them (read-only, no lock)"},
    {"expire [USER] [-c|--config CONFIG] [--now SECONDS]", cmd_expire, true,
     "remove retrieved messages past the EXPIRE policy now (one user or all; a maildrop in use "
     "is skipped)"},
    {"help", cmd_help, false, "print this list"},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const struct command *current;

/* One grammar token: [START, START+LEN) of the grammar string, brackets included. */
struct token {
	const char *start;
	size_t len;
};

static bool next_token(const char **g, struct token *t)
{
	const char *p = *g + strspn(*g, " ");

	if (*p == '\0')
		return false;
	t->start = p;
	if (*p == '[') {
		const char *close = strchr(p, ']');

		t->len = (size_t)(close - p) + 1;
	} else {
		t->len = strcspn(p, " ");
	}
	*g = p + t->len;
	return true;
}

static bool is_literal(const struct token *t)
{
	return t->start[0] >= 'a' && t->start[0] <= 'z';
}

static bool token_is(const struct token *t, const char *word)
{
	return strlen(word) == t->len && memcmp(t->start, word, t->len) == 0;
}

static void print_usage(FILE *fp, const struct command *c)
{
	fprintf(fp, "usage: gannetctl %s%s\n", c->user_file ? "[-c CONFIG | -f USERFILE] " : "",
	        c->grammar);
}

void usage_command(void)
{
	print_usage(stderr, current);
	exit(EXIT_USAGE);
}

static void usage_all(FILE *fp, const char *prefix)
{
	for (size_t i = 0; i < NCOMMANDS; i++) {
		if (prefix == NULL || strncmp(commands[i].grammar, prefix, strlen(prefix)) == 0)
			print_usage(fp, &commands[i]);
	}
}

static int cmd_help(const struct cmd_args *a)
{
	(void)a;
	printf("usage: gannetctl [-c CONFIG | -f USERFILE] COMMAND [ARGUMENTS]\n\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		printf("  %s\n      %s\n", commands[i].grammar, commands[i].help);
	printf("\nCONFIG defaults to %s; its \"userdb = PATH\" line names the user file.\n",
	       GANNETCTL_CONF_DEFAULT);
	return 0;
}

const char *args_get(const struct cmd_args *a, const char *key)
{
	for (size_t i = 0; i < a->n; i++) {
		if (strcmp(a->kv[i].key, key) == 0)
			return a->kv[i].value;
	}
	return NULL;
}

static void args_put(struct cmd_args *a, const char *key, const char *value)
{
	if (args_get(a, key) != NULL) {
		warnx("%s given twice", key);
		usage_command();
	}
	if (a->n == ARGS_MAX)
		usage_command();
	a->kv[a->n].key = key;
	a->kv[a->n].value = value;
	a->n++;
}

/* Find the option token of the grammar that NAME ("-s", "--scheme") refers to. Copies its long
 * name (the last alias) to KEY and its value placeholder to *HAS_VALUE. */
static bool find_option(const char *name, size_t nlen, char *key, size_t ksize, bool *has_value)
{
	const char *g = current->grammar;
	struct token t;

	while (next_token(&g, &t)) {
		const char *p = t.start + 1, *end = t.start + t.len - 1, *sp, *alias, *last = NULL;
		size_t lastlen = 0;
		bool match = false;

		if (t.start[0] != '[')
			continue;
		sp = memchr(p, ' ', (size_t)(end - p));
		*has_value = sp != NULL;
		if (sp != NULL)
			end = sp;
		for (alias = p; alias < end;) {
			const char *bar = memchr(alias, '|', (size_t)(end - alias));
			size_t alen = bar != NULL ? (size_t)(bar - alias) : (size_t)(end - alias);

			if (alen == nlen && memcmp(alias, name, nlen) == 0)
				match = true;
			last = alias;
			lastlen = alen;
			alias += alen + 1;
		}
		if (match && lastlen < ksize) {
			memcpy(key, last, lastlen);
			key[lastlen] = '\0';
			return true;
		}
	}
	return false;
}

/* Keys are kept as copies in a static pool: the grammar strings are not NUL-split. */
static char key_pool[ARGS_MAX][32];

static void parse_arguments(int argc, char **argv, struct cmd_args *a)
{
	const char *g = current->grammar;
	struct token t;
	size_t npos = 0, want = 0, need = 0, pool = 0;
	struct token positional[ARGS_MAX];
	bool only_positional = false;

	while (next_token(&g, &t)) {
		/* "[USER]": an optional positional argument, only at the end of the positionals. */
		bool optional = t.start[0] == '[' && t.start[1] >= 'A' && t.start[1] <= 'Z';

		if (!is_literal(&t) && (t.start[0] != '[' || optional) && want < ARGS_MAX) {
			if (optional) {
				t.start++;
				t.len -= 2;
			} else {
				need = want + 1;
			}
			positional[want++] = t;
		}
	}
	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i];

		if (!only_positional && strcmp(arg, "--") == 0) {
			only_positional = true;
			continue;
		}
		if (!only_positional && arg[0] == '-' && arg[1] != '\0') {
			const char *eq = strchr(arg, '=');
			size_t nlen =
			    eq != NULL && arg[1] == '-' ? (size_t)(eq - arg) : strlen(arg);
			bool has_value;
			char *key = key_pool[pool];

			if (pool == ARGS_MAX ||
			    !find_option(arg, nlen, key, sizeof(key_pool[0]), &has_value)) {
				warnx("unknown option %s", arg);
				usage_command();
			}
			pool++;
			if (!has_value && nlen != strlen(arg)) {
				warnx("%s takes no value", key);
				usage_command();
			}
			if (!has_value)
				args_put(a, key, "");
			else if (nlen != strlen(arg))
				args_put(a, key, arg + nlen + 1);
			else if (i + 1 < argc)
				args_put(a, key, argv[++i]);
			else {
				warnx("%s needs a value", key);
				usage_command();
			}
			continue;
		}
		if (npos == want || pool == ARGS_MAX) {
			warnx("unexpected argument '%s'", arg);
			usage_command();
		}
		memcpy(key_pool[pool], positional[npos].start, positional[npos].len);
		key_pool[pool][positional[npos].len] = '\0';
		args_put(a, key_pool[pool++], arg);
		npos++;
	}
	if (npos < need) {
		warnx("missing %.*s", (int)positional[npos].len, positional[npos].start);
		usage_command();
	}
}

/* Matches ARGV against each grammar's literal words; the command whose words all match wins. */
static const struct command *find_command(int argc, char **argv, int *used_r)
{
	for (size_t i = 0; i < NCOMMANDS; i++) {
		const char *g = commands[i].grammar;
		struct token t;
		int n = 0;
		bool ok = true;

		while (next_token(&g, &t) && is_literal(&t)) {
			if (n >= argc || !token_is(&t, argv[n])) {
				ok = false;
				break;
			}
			n++;
		}
		if (ok) {
			*used_r = n;
			return &commands[i];
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct cmd_args a = {0};
	const struct command *c;
	int opt, used;

	/* "+": stop at the command word, so that command options reach the grammar parser. */
	while ((opt = getopt(argc, argv, "+c:f:h")) != -1) {
		switch (opt) {
		case 'c':
			a.conf_path = optarg;
			break;
		case 'f':
			a.user_file = optarg;
			break;
		case 'h':
			return cmd_help(&a);
		default:
			usage_all(stderr, NULL);
			return EXIT_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (a.conf_path != NULL && a.user_file != NULL) {
		warnx("-c and -f exclude each other");
		usage_all(stderr, NULL);
		return EXIT_USAGE;
	}
	if (argc == 0) {
		usage_all(stderr, NULL);
		return EXIT_USAGE;
	}
	c = find_command(argc, argv, &used);
	if (c == NULL) {
		warnx("unknown command '%s%s%s'", argv[0], argc > 1 ? " " : "",
		      argc > 1 ? argv[1] : "");
		usage_all(stderr, strcmp(argv[0], "user") == 0 ? "user " : NULL);
		return EXIT_USAGE;
	}
	current = c;
	parse_arguments(argc - used, argv + used, &a);
	if (!c->user_file && (a.conf_path != NULL || a.user_file != NULL)) {
		warnx("-c and -f do not apply to this command");
		usage_command();
	}
	return c->fn(&a);
}
