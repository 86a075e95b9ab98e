/* PAM workers (see pamworker.h): forked by the auth process while it is still root. Each worker
 * owns one socketpair and serves one request at a time; every request runs in a child of its
 * own, so a PAM module that leaks, crashes or hangs (killed after PAMW_TIMEOUT) takes nothing
 * else with it. */
#include "pamworker.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <security/pam_appl.h>

#include "ipc.h"
#include "log.h"
#include "proto.h"

enum { PAMW_REQ = 1, PAMW_RES = 2 };

/* Buffer for getpwnam_r: a passwd line with a long gecos and home fits many times over. */
#define PAMW_PWBUF 16384

/* Why a check ended, for the log; the number travels on the wire. */
enum why {
	WHY_OK,
	WHY_UNKNOWN,
	WHY_UID_RANGE,
	WHY_AUTH,
	WHY_ACCT,
	WHY_PAM_ERROR,
	WHY_NSS,
	WHY_USER_CHANGED,
	WHY_TIMEOUT,
	WHY_GONE,
	WHY_BAD_REQUEST,
	WHY_NUL,
	WHY_COUNT
};

static const char *const reasons[] = {
    [WHY_OK] = "ok",
    [WHY_UNKNOWN] = "unknown_user",
    [WHY_UID_RANGE] = "uid_out_of_range",
    [WHY_AUTH] = "wrong_password",
    [WHY_ACCT] = "account_refused",
    [WHY_PAM_ERROR] = "pam_error",
    [WHY_NSS] = "nss_error",
    [WHY_USER_CHANGED] = "pam_user_changed",
    [WHY_TIMEOUT] = "pam_timeout",
    [WHY_GONE] = "pam_worker_gone",
    [WHY_BAD_REQUEST] = "bad_request",
    [WHY_NUL] = "password_has_nul",
};

_Static_assert(sizeof(reasons) / sizeof(reasons[0]) == WHY_COUNT, "one reason per code");

struct verdict {
	enum pamw_result result;
	unsigned reason;
	struct pamw_account acct;
};

static const struct conf *conf;
static int fds[PAMW_MAX];
static bool busy[PAMW_MAX];
static uint32_t seqs[PAMW_MAX];
static size_t n_fds;
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_cond = PTHREAD_COND_INITIALIZER;

/* --- the worker side (root) ------------------------------------------------------------------ */

/* Answer PAM_PROMPT_ECHO_OFF with the password and nothing else: a module that asks for a user
 * name or a second factor has no business in a POP3 login. */
static int conv_cb(int n, const struct pam_message **msg, struct pam_response **resp_r,
                   void *appdata)
{
	struct pam_response *resp = calloc((size_t)n, sizeof(*resp));

	if (n <= 0 || resp == NULL) {
		free(resp);
		return PAM_CONV_ERR;
	}
	for (int i = 0; i < n; i++) {
		if (msg[i]->msg_style == PAM_ERROR_MSG || msg[i]->msg_style == PAM_TEXT_INFO)
			continue;
		if (msg[i]->msg_style == PAM_PROMPT_ECHO_OFF &&
		    (resp[i].resp = strdup(appdata)) != NULL)
			continue;
		for (int k = 0; k < i; k++) {
			if (resp[k].resp != NULL) {
				explicit_bzero(resp[k].resp, strlen(resp[k].resp));
				free(resp[k].resp);
			}
		}
		free(resp);
		return PAM_CONV_ERR;
	}
	*resp_r = resp;
	return PAM_SUCCESS;
}

/* Our brute-force defence (penalty.c) delays failed replies without holding a thread; pam_unix's
 * own 2 s sleep would hold an auth thread per failure, a cheap way to starve the pool. */
static void no_delay_cb(int retval, unsigned usec, void *appdata)
{
}

static enum pamw_result map_pam(int rc, unsigned *reason, unsigned fail_reason)
{
	switch (rc) {
	case PAM_SUCCESS:
		*reason = WHY_OK;
		return PAMW_OK;
	case PAM_AUTH_ERR:
	case PAM_USER_UNKNOWN:
	case PAM_ACCT_EXPIRED:
	case PAM_PERM_DENIED:
	case PAM_NEW_AUTHTOK_REQD:
	case PAM_MAXTRIES:
		*reason = fail_reason;
		return PAMW_FAIL;
	default:
		*reason = WHY_PAM_ERROR;
		return PAMW_TEMPFAIL;
	}
}

static void run_pam(const char *user, char *pw, const char *ip, struct verdict *v)
{
	struct pam_conv conv = {conv_cb, pw};
	void (*delay_fn)(int, unsigned, void *) = no_delay_cb;
	void *delay_item;
	pam_handle_t *h = NULL;
	const void *item = NULL;
	int rc = pam_start(conf->pam_service, user, &conv, &h);

	if (rc == PAM_SUCCESS)
		rc = pam_set_item(h, PAM_RHOST, ip);
	/* PAM_FAIL_DELAY takes a function through a data pointer. */
	memcpy(&delay_item, &delay_fn, sizeof(delay_item));
	if (rc == PAM_SUCCESS)
		rc = pam_set_item(h, PAM_FAIL_DELAY, delay_item);
	v->result = PAMW_TEMPFAIL;
	v->reason = WHY_PAM_ERROR;
	if (rc == PAM_SUCCESS)
		v->result =
		    map_pam(pam_authenticate(h, PAM_DISALLOW_NULL_AUTHTOK), &v->reason, WHY_AUTH);
	if (rc == PAM_SUCCESS && v->result == PAMW_OK)
		v->result =
		    map_pam(pam_acct_mgmt(h, PAM_DISALLOW_NULL_AUTHTOK), &v->reason, WHY_ACCT);
	/* A module that maps the name would hand us someone else's mailbox. */
	if (rc == PAM_SUCCESS && v->result == PAMW_OK &&
	    (pam_get_item(h, PAM_USER, &item) != PAM_SUCCESS || item == NULL ||
	     strcmp(item, user) != 0)) {
		v->result = PAMW_FAIL;
		v->reason = WHY_USER_CHANGED;
	}
	if (h != NULL)
		pam_end(h, v->result == PAMW_OK ? PAM_SUCCESS : PAM_AUTH_ERR);
}

/* The account first: an unknown name or a uid outside the bounds never reaches PAM. */
static void check_account(const char *user, char *pw, const char *ip, struct verdict *v)
{
	static char buf[PAMW_PWBUF];
	struct passwd pwd, *res = NULL;
	int rc = getpwnam_r(user, &pwd, buf, sizeof(buf), &res);

	v->result = PAMW_UNKNOWN;
	v->reason = WHY_UNKNOWN;
	if (rc != 0) {
		v->result = PAMW_TEMPFAIL;
		v->reason = WHY_NSS;
		return;
	}
	if (res == NULL || strcmp(pwd.pw_name, user) != 0)
		return;
	if ((long)pwd.pw_uid < conf->first_valid_uid ||
	    (conf->last_valid_uid > 0 && (long)pwd.pw_uid > conf->last_valid_uid)) {
		v->reason = WHY_UID_RANGE;
		return;
	}
	v->acct.uid = pwd.pw_uid;
	v->acct.gid = pwd.pw_gid;
	snprintf(v->acct.home, sizeof(v->acct.home), "%s", pwd.pw_dir ? pwd.pw_dir : "");
	run_pam(user, pw, ip, v);
}

static void send_verdict(int fd, uint32_t seq, const struct verdict *v)
{
	static struct ipc_msg m;

	ipc_msg_init(&m, PAMW_RES);
	ipc_put_u32(&m, seq);
	ipc_put_u32(&m, (uint32_t)v->result);
	ipc_put_u32(&m, v->reason);
	ipc_put_u32(&m, (uint32_t)v->acct.uid);
	ipc_put_u32(&m, (uint32_t)v->acct.gid);
	ipc_put_str(&m, v->acct.home);
	if (ipc_send(fd, &m, -1) < 0)
		_exit(1); /* the auth process is gone */
}

/* One request: parse, then run the check in a child killed after PAMW_TIMEOUT. */
static void serve(int fd, struct ipc_msg *m)
{
	char user[USERNAME_MAX + 1], ip[64], pw[PASSWORD_MAX + 1];
	struct verdict v = {PAMW_TEMPFAIL, WHY_BAD_REQUEST, {0, 0, ""}};
	const void *p;
	uint32_t seq = 0;
	size_t len;
	int status = 0;
	pid_t pid;

	if (m->type != PAMW_REQ || ipc_get_u32(m, &seq) < 0 ||
	    ipc_get_str(m, user, sizeof(user)) < 0 || ipc_get_data(m, &p, &len) < 0 ||
	    ipc_get_str(m, ip, sizeof(ip)) < 0 || ipc_end(m) < 0 || len > PASSWORD_MAX) {
		send_verdict(fd, seq, &v);
		return;
	}
	memcpy(pw, p, len);
	pw[len] = '\0';
	explicit_bzero(m->data, m->len);
	if ((pid = fork()) == 0) {
		alarm(PAMW_TIMEOUT);
		check_account(user, pw, ip, &v);
		explicit_bzero(pw, sizeof(pw));
		send_verdict(fd, seq, &v);
		_exit(0);
	}
	explicit_bzero(pw, sizeof(pw));
	while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (pid < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		v.reason = pid < 0 ? WHY_PAM_ERROR : WHY_TIMEOUT;
		send_verdict(fd, seq, &v);
	}
}

static void worker_main(int fd, pid_t parent) __attribute__((noreturn));
static void worker_main(int fd, pid_t parent)
{
	static struct ipc_msg m;

	/* Die with the auth process; nothing else may talk to us. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		_exit(0);
	prctl(PR_SET_NAME, "gannetd-pam", 0, 0, 0);
	log_procname("gannetd/pam");
	for (;;) {
		int r = ipc_recv(fd, &m);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			_exit(0);
		if (m.fd >= 0)
			close(m.fd);
		serve(fd, &m);
		explicit_bzero(m.data, sizeof(m.data));
	}
}

void pamw_start(const struct conf *c, size_t n)
{
	pid_t parent = getpid();

	conf = c;
	if (n == 0 || n > PAMW_MAX)
		fatalx("pam workers: bad count %zu", n);
	for (size_t i = 0; i < n; i++) {
		int sv[2];
		pid_t pid;

		/* Blocking ends: each side waits for the other, on its own thread or process. */
		if (ipc_socketpair(sv) < 0 || fcntl(sv[0], F_SETFL, 0) < 0 ||
		    fcntl(sv[1], F_SETFL, 0) < 0)
			fatal("pam worker socketpair");
		if ((pid = fork()) < 0)
			fatal("fork pam worker");
		if (pid == 0) {
			/* Only our own end survives: not the master channel, not the other
			 * workers' ends (a worker holding the master channel would hide the auth
			 * process's death from the master). */
			closelog();
			if (dup2(sv[1], CHILD_CHANNEL_FD) < 0)
				_exit(1);
			closefrom(CHILD_CHANNEL_FD + 1);
			worker_main(CHILD_CHANNEL_FD, parent);
		}
		close(sv[1]);
		fds[n_fds++] = sv[0];
	}
}

/* --- the auth side ---------------------------------------------------------------------------- */

static size_t take_worker(void)
{
	size_t i;

	pthread_mutex_lock(&pool_lock);
	for (;;) {
		for (i = 0; i < n_fds && busy[i]; i++)
			;
		if (i < n_fds)
			break;
		pthread_cond_wait(&pool_cond, &pool_lock);
	}
	busy[i] = true;
	pthread_mutex_unlock(&pool_lock);
	return i;
}

static void give_worker(size_t i)
{
	pthread_mutex_lock(&pool_lock);
	busy[i] = false;
	pthread_cond_signal(&pool_cond);
	pthread_mutex_unlock(&pool_lock);
}

/* Wait for the reply numbered SEQ; older replies (a request that timed out here) are skipped. */
static int read_verdict(int fd, uint32_t seq, struct ipc_msg *m, struct verdict *v)
{
	time_t deadline = time(NULL) + PAMW_TIMEOUT + 5;
	uint32_t got, res, reason, uid, gid;

	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		long left = (long)(deadline - time(NULL));
		int r = left > 0 ? poll(&pfd, 1, (int)left * 1000) : 0;

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			v->reason = WHY_TIMEOUT;
			return -1;
		}
		if ((r = ipc_recv(fd, m)) <= 0) {
			v->reason = WHY_GONE;
			return -1;
		}
		if (m->fd >= 0)
			close(m->fd);
		if (m->type != PAMW_RES || ipc_get_u32(m, &got) < 0 || ipc_get_u32(m, &res) < 0 ||
		    ipc_get_u32(m, &reason) < 0 || ipc_get_u32(m, &uid) < 0 ||
		    ipc_get_u32(m, &gid) < 0 ||
		    ipc_get_str(m, v->acct.home, sizeof(v->acct.home)) < 0 || ipc_end(m) < 0 ||
		    res > PAMW_TEMPFAIL || reason >= WHY_COUNT) {
			v->reason = WHY_GONE;
			return -1;
		}
		if (got != seq)
			continue;
		v->result = (enum pamw_result)res;
		v->reason = reason;
		v->acct.uid = (uid_t)uid;
		v->acct.gid = (gid_t)gid;
		return 0;
	}
}

enum pamw_result pamw_check(const char *user, const char *pw, size_t pwlen, const char *ip,
                            struct pamw_account *acct, const char **reason_r)
{
	struct ipc_msg *m = malloc(sizeof(*m));
	struct verdict v = {PAMW_TEMPFAIL, WHY_GONE, {0, 0, ""}};
	size_t w;
	int sent;

	if (memchr(pw, '\0', pwlen) != NULL) {
		/* PAM takes C strings: a NUL would cut the password short. */
		free(m);
		*reason_r = reasons[WHY_NUL];
		return PAMW_FAIL;
	}
	if (m == NULL || n_fds == 0) {
		free(m);
		*reason_r = reasons[WHY_GONE];
		return PAMW_TEMPFAIL;
	}
	w = take_worker();
	ipc_msg_init(m, PAMW_REQ);
	ipc_put_u32(m, ++seqs[w]);
	ipc_put_str(m, user);
	ipc_put_data(m, pw, pwlen);
	ipc_put_str(m, ip);
	sent = ipc_send(fds[w], m, -1);
	explicit_bzero(m->data, sizeof(m->data));
	if (sent == 0 && read_verdict(fds[w], seqs[w], m, &v) < 0)
		v.result = PAMW_TEMPFAIL;
	give_worker(w);
	free(m);
	if (v.result == PAMW_OK)
		*acct = v.acct;
	*reason_r = reasons[v.reason];
	return v.result;
}
