/* Child process start-up: receive the configuration from the master and give up privileges. */
#include "child.h"

#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "ipc.h"
#include "log.h"

/* A child that has not heard from the master within this time was orphaned at birth. */
#define HELLO_TIMEOUT_MS 10000
/* Supplementary groups a system account's mail process gets at most (its own plus
 * mail_privileged_group); far above real accounts, and a fixed array needs no allocation. */
#define CHILD_GROUPS_MAX 256
/* Buffer for getpwnam_r/getgrnam_r: a long gecos or a big group's member list fits. */
#define CHILD_PWBUF 65536

void child_init(enum proc_kind kind, struct child_env *env)
{
	struct pollfd pfd = {.fd = CHILD_CHANNEL_FD, .events = POLLIN};
	struct ipc_msg *m = malloc(sizeof(*m));
	uint32_t version, k, gen, fg;
	const void *text, *keys;
	size_t textlen, keyslen;
	char err[512];
	char *copy;

	if (m == NULL)
		fatal("malloc");
	for (;;) {
		int r = poll(&pfd, 1, HELLO_TIMEOUT_MS);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			fatalx("no hello from the master");
		r = ipc_recv(CHILD_CHANNEL_FD, m);
		if (r < 0 && errno == EAGAIN)
			continue;
		if (r <= 0)
			fatal("reading hello from the master");
		break;
	}
	if (m->type != MSG_HELLO || ipc_get_u32(m, &version) < 0 || ipc_get_u32(m, &k) < 0 ||
	    ipc_get_u32(m, &gen) < 0 || ipc_get_u32(m, &fg) < 0 ||
	    ipc_get_data(m, &text, &textlen) < 0 || ipc_get_data(m, &keys, &keyslen) < 0 ||
	    ipc_end(m) < 0 || (keyslen != 0 && keyslen != sizeof(env->ticket_keys)))
		fatalx("malformed hello from the master");
	if (version != IPC_VERSION)
		fatalx("IPC version %u from the master, this binary speaks %u", version,
		       IPC_VERSION);
	if (k != (uint32_t)kind)
		fatalx("master started us as kind %u, expected %u", k, (unsigned)kind);
	copy = malloc(textlen + 1);
	if (copy == NULL)
		fatal("malloc");
	memcpy(copy, text, textlen);
	copy[textlen] = '\0';
	if (conf_parse("(from master)", copy, textlen, &env->conf, err, sizeof(err)) < 0)
		fatalx("configuration from the master does not parse: %s", err);
	free(copy);
	if (keyslen == sizeof(env->ticket_keys)) {
		memcpy(env->ticket_keys, keys, keyslen);
		env->have_ticket_keys = true;
	}
	explicit_bzero(m, sizeof(*m));
	free(m);
	{
		char name[16];
		static const char *const kinds[] = {"master", "login", "auth", "mail"};
		snprintf(name, sizeof(name), "gannetd-%s", kinds[kind]);
		prctl(PR_SET_NAME, name, 0, 0, 0);
	}
	env->generation = gen;
	env->foreground = fg != 0;
	log_set_level((enum log_level)env->conf.log_level);
}

int child_setids(uid_t uid, gid_t gid)
{
	if (setgroups(1, &gid) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
		return -1;
	return 0;
}

/* The groups of system account USER (uid UID, gid GID) plus mail_privileged_group, into GROUPS
 * (CHILD_GROUPS_MAX). Returns the count, 0 when USER is not that system account, -1 on error. */
static int system_groups(const struct conf *conf, const char *user, uid_t uid, gid_t gid,
                         gid_t *groups)
{
	char buf[CHILD_PWBUF];
	struct passwd pwd, *pw = NULL;
	struct group grp, *gr = NULL;
	int n = CHILD_GROUPS_MAX - 1;

	if (getpwnam_r(user, &pwd, buf, sizeof(buf), &pw) != 0)
		return -1;
	if (pw == NULL || pw->pw_uid != uid || pw->pw_gid != gid)
		return 0;
	if (getgrouplist(user, gid, groups, &n) < 0)
		return -1;
	if (conf->mail_privileged_group[0] == '\0')
		return n;
	if (getgrnam_r(conf->mail_privileged_group, &grp, buf, sizeof(buf), &gr) != 0 ||
	    gr == NULL) {
		errno = ENOENT;
		return -1;
	}
	groups[n++] = gr->gr_gid;
	return n;
}

int child_setids_user(const struct conf *conf, const char *user, uid_t uid, gid_t gid)
{
	gid_t groups[CHILD_GROUPS_MAX];
	int n = conf->system_users ? system_groups(conf, user, uid, gid, groups) : 0;

	if (n < 0)
		return -1;
	if (n == 0)
		return child_setids(uid, gid);
	if (setgroups((size_t)n, groups) < 0 || setresgid(gid, gid, gid) < 0 ||
	    setresuid(uid, uid, uid) < 0)
		return -1;
	return 0;
}

void child_drop_privileges(const char *user, const char *setting, const char *chroot_dir)
{
	struct passwd *pw = NULL;

	if (geteuid() != 0)
		return;
	if (user[0] != '\0') {
		pw = getpwnam(user);
		if (pw == NULL)
			fatalx("%s: no such user \"%s\"", setting, user);
	}
	if (chroot_dir[0] != '\0') {
		if (chroot(chroot_dir) < 0 || chdir("/") < 0)
			fatal("chroot %s", chroot_dir);
	}
	if (pw == NULL)
		return; /* the master warned once at start-up */
	if (child_setids(pw->pw_uid, pw->pw_gid) < 0)
		fatal("cannot switch to user %s", user);
	if (setuid(0) == 0)
		fatalx("could regain root after dropping privileges");
}
