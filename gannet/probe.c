/* check and probe: the same session code as fetch, stopped early, with a report for people. */
#include "probe.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "auth.h"
#include "log.h"
#include "session.h"
#include "strnum.h"
#include "tlsclient.h"

static const char *tls_word(enum tls_mode m)
{
	return m == TLS_MODE_IMPLICIT ? "tls" : m == TLS_MODE_STARTTLS ? "starttls" : "none";
}

/* A hint for the usual mistakes behind an error code. */
static const char *hint(int code, const struct account *a)
{
	switch (code) {
	case EX_NOPERM:
		return "check user and password (some providers want an app password)";
	case EX_NOHOST:
		return "check the host name";
	case EX_UNAVAILABLE:
		return a->tls == TLS_MODE_IMPLICIT ? "check host and port (995 for tls)"
		                                   : "check host and port (110 for starttls)";
	case EX_TEMPFAIL:
		return "the server or the network is slow or busy; try again later";
	case EX_PROTOCOL:
		return "run 'gannet probe' on the server to see its certificate and capabilities";
	default:
		return NULL;
	}
}

static int report_failure(const struct account *a, const struct gerr *e, const char *step)
{
	const char *h = hint(e->code, a);

	printf("FAILED at %s: %s\n", step, e->msg);
	if (h != NULL)
		printf("hint: %s\n", h);
	fflush(stdout);
	return e->code;
}

static void report_tls(struct sess *s)
{
	if (s->conn.ssl == NULL) {
		printf("tls:          none (tls = none: the password travels in clear text)\n");
		return;
	}
	printf("tls:          %s %s, certificate verified for %s%s\n", SSL_get_version(s->conn.ssl),
	       SSL_get_cipher_name(s->conn.ssl), s->acc->host,
	       s->acc->have_pin ? ", pin matches" : "");
}

int check_account(const struct gconfig *cfg, const struct account *a)
{
	char secret[GANNET_SECRET_MAX + 1], clean[GANNET_REPLY_MAX * 4];
	struct gerr e = {0};
	struct sess s;
	size_t slen;
	uint64_t count, size;
	int r;

	(void)cfg;
	printf("account:      %s\nserver:       %s:%u (%s)\n", a->name, a->host, (unsigned)a->port,
	       tls_word(a->tls));
	if (auth_secret(a, secret, sizeof(secret), &slen, &e) < 0)
		return report_failure(a, &e, "password");
	if (sess_open(&s, a, true, &e) < 0) {
		explicit_bzero(secret, sizeof(secret));
		r = report_failure(a, &e, sess_state_name(s.failed_in));
		sess_close(&s);
		return r;
	}
	report_tls(&s);
	printf("greeting:     %s\n",
	       log_sanitize(clean, sizeof(clean), s.greeting, s.greeting_len));
	printf("capabilities: %s\n", s.capa.answered ? s.capa_text : "(CAPA not supported)");
	r = sess_login(&s, secret, slen);
	explicit_bzero(secret, sizeof(secret));
	if (r < 0) {
		r = report_failure(a, &e, "login");
		sess_close(&s);
		return r;
	}
	printf("login:        ok (%s)\n", s.mech);
	r = sess_cmd(&s, "STAT");
	if (r != 0 || pop3c_parse_stat(s.text, s.text_len, &count, &size) < 0) {
		if (r > 0)
			sess_fail_reply(&s, "STAT");
		gerr_set(&e, EX_PROTOCOL, "malformed STAT reply");
		r = report_failure(a, &e, "STAT");
		sess_close(&s);
		return r;
	}
	printf("mailbox:      %" PRIu64 " messages, %" PRIu64 " octets\n", count, size);
	if (!s.capa.uidl && s.capa.answered)
		printf("note:         no UIDL: messages are told apart by their header (TOP)\n");
	if (s.capa.login_delay_set)
		printf("note:         the server allows one login every %" PRIu64 " s\n",
		       s.capa.login_delay);
	if (sess_quit(&s) < 0)
		return report_failure(a, &e, "QUIT");
	printf("result:       ok\n");
	return 0;
}

/* Split "host", "host:port" or "[v6]:port". 0 or -1. */
static int split_hostport(const char *in, struct account *a)
{
	const char *colon, *host = in;
	size_t hl;
	uint64_t port = 0;

	if (in[0] == '[') {
		const char *close = strchr(in, ']');
		if (close == NULL || (close[1] != '\0' && close[1] != ':'))
			return -1;
		host = in + 1;
		hl = (size_t)(close - host);
		colon = close[1] == ':' ? close + 1 : NULL;
	} else {
		colon = strchr(in, ':');
		if (colon != NULL && strchr(colon + 1, ':') != NULL)
			colon = NULL; /* a bare IPv6 address */
		hl = colon ? (size_t)(colon - in) : strlen(in);
	}
	if (hl == 0 || hl > GANNET_HOST_MAX)
		return -1;
	memcpy(a->host, host, hl);
	a->host[hl] = '\0';
	if (colon != NULL && strnum_parse(colon + 1, 1, 65535, &port) < 0)
		return -1;
	a->port = (uint16_t)port;
	return 0;
}

int probe_host(const char *hostport, const char *tls, const char *ca_file, int timeout_s)
{
	static struct account a;
	char clean[GANNET_REPLY_MAX * 4];
	struct gerr e = {0};
	struct sess s;

	memset(&a, 0, sizeof(a));
	snprintf(a.name, sizeof(a.name), "probe");
	if (split_hostport(hostport, &a) < 0) {
		fprintf(stderr, "gannet: bad HOST[:PORT] '%s'\n", hostport);
		return EX_USAGE;
	}
	if (tls == NULL)
		a.tls = a.port == 110 ? TLS_MODE_STARTTLS : TLS_MODE_IMPLICIT;
	else if (strcmp(tls, "tls") == 0)
		a.tls = TLS_MODE_IMPLICIT;
	else if (strcmp(tls, "starttls") == 0)
		a.tls = TLS_MODE_STARTTLS;
	else
		a.tls = TLS_MODE_NONE;
	if (a.port == 0)
		a.port = a.tls == TLS_MODE_IMPLICIT ? 995 : 110;
	if (ca_file != NULL)
		snprintf(a.ca_file, sizeof(a.ca_file), "%s", ca_file);
	a.timeout = timeout_s;
	printf("%-12s %s:%u (%s)\n", "server", a.host, (unsigned)a.port, tls_word(a.tls));
	if (sess_open(&s, &a, false, &e) < 0) {
		if (s.conn.ssl != NULL && s.tls)
			tlsc_report(s.conn.ssl, stdout);
		printf("FAILED: %s\n", e.msg);
		sess_close(&s);
		return e.code;
	}
	printf("%-12s %s\n", "greeting",
	       log_sanitize(clean, sizeof(clean), s.greeting, s.greeting_len));
	printf("%-12s %s\n", "capabilities",
	       s.capa.answered ? s.capa_text : "(CAPA not supported)");
	if (s.conn.ssl != NULL)
		tlsc_report(s.conn.ssl, stdout);
	else
		printf("%-12s none\n", "tls");
	sess_quit(&s);
	return 0;
}
