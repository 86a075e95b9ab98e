/* gannetctl expire: apply the RFC 2449 EXPIRE policy offline, as gannetd's UPDATE would. */
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "gannet_limits.h"
#include "gannetctl.h"
#include "log.h"
#include "maildir.h"
#include "strnum.h"
#include "userdb.h"

/* What one maildrop came to. */
enum expire_outcome { EXPIRE_DONE, EXPIRE_SKIPPED, EXPIRE_FAILED };

/* Lock, finish an interrupted UPDATE, scan, and remove what the policy says, through the same
 * journal as a POP3 QUIT. Runs with the Maildir owner's ids when started as root. */
static enum expire_outcome expire_locked(const struct conf *c, const char *user, const char *dir,
                                         long days, time_t now)
{
	struct maildir_snapshot snap = {0};
	unsigned char *del = NULL;
	const char *error = NULL;
	size_t marked, removed = 0, recovered;
	bool ignored;
	struct maildir_lockh lock;
	int rc;

	rc = maildir_lock_mode(dir, (enum maildir_lock_kind)c->maildir_lock, &lock);
	if (rc == -2) {
		printf("%s: maildrop in use by a POP3 session, skipped\n", user);
		return EXPIRE_SKIPPED;
	}
	if (rc < 0) {
		warn("%s: cannot lock %s", user, dir);
		return EXPIRE_FAILED;
	}
	rc = maildir_journal_recover(dir, &recovered, &ignored, &error);
	if (rc == MAILDIR_OK)
		rc = maildir_scan(dir, (enum uidl_source)c->uidl_source, &snap, &error);
	if (rc == MAILDIR_OK && (del = calloc(snap.count + 1, 1)) == NULL) {
		error = "out of memory";
		rc = MAILDIR_ERR_TEMP;
	}
	if (rc != MAILDIR_OK) {
		warnx("%s: %s", user, error != NULL ? error : "maildir error");
		goto out;
	}
	marked = maildir_expire_mark(&snap, del, now, days);
	if (marked > 0) {
		rc = maildir_journal_write(dir, &snap, del, &error);
		if (rc != MAILDIR_OK) {
			warnx("%s: %s", user, error);
			goto out;
		}
		for (size_t i = 0; i < snap.count; i++) {
			if (!del[i])
				continue;
			if (maildir_unlink_msg(dir, &snap, i) < 0)
				warn("%s: message %zu not removed", user, i + 1);
			else
				removed++;
		}
		if (maildir_journal_finish(dir, &error) != MAILDIR_OK)
			warnx("%s: %s (the next login finishes it)", user, error);
		maildir_snapshot_save(dir, &snap);
	}
	printf("%s: %zu of %zu messages expired (expire %ld days)\n", user, removed, snap.count,
	       days);
	if (removed != marked)
		rc = MAILDIR_ERR_TEMP;
out:
	free(del);
	maildir_snapshot_free(&snap);
	maildir_lock_drop(&lock);
	return rc == MAILDIR_OK ? EXPIRE_DONE : EXPIRE_FAILED;
}

/* One user's maildrop. Started as root, the work runs as the Maildir's owner, so that the lock,
 * index and journal files stay the mail process's to rewrite. */
static enum expire_outcome expire_user(const struct conf *c, const struct userdb_entry *e,
                                       time_t now)
{
	long days = userdb_policy_expire(c->expire_days, e->has_expire, e->expire_days);
	char dir[GANNET_PATH_MAX];
	const char *error;
	enum expire_outcome r;
	struct stat st;
	bool switched = false;

	if (days < 0) {
		printf("%s: expire never, nothing to do\n", e->user);
		return EXPIRE_DONE;
	}
	if (userdb_mail_path(e->mail[0] ? e->mail : c->mail_location, e, dir, sizeof(dir), &error) <
	    0) {
		warnx("%s: mail location: %s", e->user, error);
		return EXPIRE_FAILED;
	}
	if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		printf("%s: no Maildir at %s, nothing to do\n", e->user, dir);
		return EXPIRE_DONE;
	}
	if (geteuid() == 0 && st.st_uid != 0) {
		if (setegid(st.st_gid) < 0 || seteuid(st.st_uid) < 0) {
			warn("%s: cannot switch to the owner of %s", e->user, dir);
			if (setegid(0) < 0)
				err(EXIT_FAIL, "setegid");
			return EXPIRE_FAILED;
		}
		switched = true;
	}
	r = expire_locked(c, e->user, dir, days, now);
	if (switched && (seteuid(0) < 0 || setegid(0) < 0))
		err(EXIT_FAIL, "cannot switch back to root");
	return r;
}

int cmd_expire(const struct cmd_args *a)
{
	const char *user = args_get(a, "USER"), *now_arg = args_get(a, "--now"), *error = NULL;
	struct userdb_entry *e = calloc(1, sizeof(*e));
	struct userfile uf = {.lock_fd = -1};
	size_t done = 0, skipped = 0, failed = 0;
	time_t now = time(NULL);
	const char *userdb;
	struct conf *c;
	uint64_t v;
	int rc = EXIT_FAIL;

	if (e == NULL)
		err(EXIT_FAIL, "calloc");
	if (now_arg != NULL) {
		/* A pretend clock: what a run at that time would remove (tests, what-if). */
		if (strnum_parse(now_arg, 0, INT32_MAX, &v) < 0) {
			warnx("--now: expected seconds since 1970");
			free(e);
			return EXIT_USAGE;
		}
		now = (time_t)v;
	}
	if (user != NULL && userdb_valid_name(user, strlen(user), &error) < 0) {
		warnx("bad user name: %s", error);
		free(e);
		return EXIT_FAIL;
	}
	if ((c = conf_from_args(a, NULL)) == NULL) {
		free(e);
		return EXIT_FAIL;
	}
	/* The library reports problems through the log: to stderr, warnings and up. */
	log_init("gannetctl", true, LOG_LEVEL_WARN);
	maildir_scan_trust_stamps(c->maildir_lock != MAILDIR_LOCK_DOTLOCK); /* as gannetd's mail */
	userdb = a->user_file != NULL ? a->user_file : c->userdb;
	if (user != NULL) {
		int found = userdb_lookup(userdb, user, e, &error);

		if (found <= 0) {
			warnx("%s", found < 0 ? error : "unknown user");
			goto out;
		}
		switch (expire_user(c, e, now)) {
		case EXPIRE_DONE:
			rc = 0;
			break;
		case EXPIRE_SKIPPED:
			rc = 0;
			break;
		case EXPIRE_FAILED:
			break;
		}
		goto out;
	}
	if (userfile_load(&uf, userdb, false) < 0)
		goto out;
	for (size_t pos = 0, lineno = 1;; lineno++) {
		const char *line;
		size_t len;
		char buf[USERDB_LINE_MAX + 1];

		if (!userfile_next_line(uf.data, uf.len, &pos, &line, &len))
			break;
		if (len == 0 || line[0] == '#')
			continue;
		if (len > USERDB_LINE_MAX || memchr(line, '\0', len) != NULL) {
			warnx("%s:%zu: line too long or holds a NUL", userdb, lineno);
			failed++;
			continue;
		}
		memcpy(buf, line, len);
		buf[len] = '\0';
		if (len > 0 && buf[len - 1] == '\r')
			buf[len - 1] = '\0';
		if (userdb_parse_line(buf, e, &error) < 0) {
			warnx("%s:%zu: %s", userdb, lineno, error);
			failed++;
			continue;
		}
		switch (expire_user(c, e, now)) {
		case EXPIRE_DONE:
			done++;
			break;
		case EXPIRE_SKIPPED:
			skipped++;
			break;
		case EXPIRE_FAILED:
			failed++;
			break;
		}
		explicit_bzero(buf, sizeof(buf));
	}
	printf("%zu maildrops done, %zu skipped (in use), %zu failed\n", done, skipped, failed);
	rc = failed > 0 ? EXIT_FAIL : 0;
out:
	userfile_close(&uf);
	explicit_bzero(e, sizeof(*e)); /* holds the password hash and SCRAM verifiers */
	free(e);
	free(c);
	return rc;
}
