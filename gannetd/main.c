/* gannetd: command line, configuration check, and dispatch to the master or a child role. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "child.h"
#include "conf.h"
#include "log.h"
#include "master.h"
#include "tls.h"

#define DEFAULT_CONFIG "/etc/gannet/gannetd.conf"

static void usage(void)
{
	fprintf(stderr,
	        "usage: gannetd [-d] [-n] [-N] [-c config]\n"
	        "  -c FILE  configuration file (default " DEFAULT_CONFIG ")\n"
	        "  -d       stay in the foreground and log to stderr (else detach, log to syslog)\n"
	        "  -n       check the configuration and exit\n"
	        "  -N       print every setting with its default\n");
	exit(2);
}

static void run_child(const char *kind, bool fg)
{
	struct child_env *env = calloc(1, sizeof(*env));

	if (env == NULL)
		fatal("calloc");
	if (strcmp(kind, "login") == 0) {
		log_init("gannetd/login", fg, LOG_LEVEL_INFO);
		child_init(PROC_LOGIN, env);
		login_main(env);
	} else if (strcmp(kind, "auth") == 0) {
		log_init("gannetd/auth", fg, LOG_LEVEL_INFO);
		child_init(PROC_AUTH, env);
		auth_main(env);
	} else if (strcmp(kind, "mail") == 0) {
		log_init("gannetd/mail", fg, LOG_LEVEL_INFO);
		child_init(PROC_MAIL, env);
		mail_main(env);
	}
	fatalx("unknown child kind %s", kind);
}

int main(int argc, char **argv)
{
	const char *file = DEFAULT_CONFIG, *child = NULL;
	bool fg = false, check = false;
	struct conf *conf;
	char err[1024];
	size_t len;
	char *text;
	int ch;

	while ((ch = getopt(argc, argv, "c:dnNX:")) != -1) {
		switch (ch) {
		case 'c':
			file = optarg;
			break;
		case 'd':
			fg = true;
			break;
		case 'n':
			check = true;
			break;
		case 'N':
			conf_print_defaults();
			return 0;
		case 'X': /* internal: started by the master as a child role */
			child = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	if (child != NULL)
		run_child(child, fg);

	log_init("gannetd", fg || check, LOG_LEVEL_INFO);
	conf = calloc(1, sizeof(*conf));
	if (conf == NULL)
		fatal("calloc");
	text = conf_read_file(file, &len, err, sizeof(err));
	if (text == NULL || conf_parse(file, text, len, conf, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	if (conf->have_tls) {
		SSL_CTX *ctx = tls_server_ctx(conf, err, sizeof(err));
		if (ctx == NULL) {
			fprintf(stderr, "%s: %s\n", file, err);
			return 1;
		}
		SSL_CTX_free(ctx);
	}
	if (check) {
		printf("configuration OK\n");
		return 0;
	}
	master_main(file, conf, text, len, fg);
}
