/* gannetctl uidl list: the UIDLs a POP3 client would see, through gannetd's own scan, read-only. */
#include <dirent.h>
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "gannet_limits.h"
#include "gannetctl.h"
#include "log.h"
#include "maildir.h"
#include "mindex.h"
#include "uidlsrc.h"
#include "userdb.h"

/* maildir_scan() may create new/ cur/ tmp/ and rewrites gannet.index when it learnt something;
 * an administrator's look must do neither to a live maildrop, nor take the POP3 lock (a client
 * may be logged in). So the scan runs on a private directory: new/ and cur/ are symlinks to the
 * real ones (the scan opens them without O_NOFOLLOW; each message is still opened O_NOFOLLOW
 * inside the real directory), gannet.index and dovecot-uidlist are copies (the library opens them
 * O_NOFOLLOW). Whatever the scan writes lands in the copy, which is removed afterwards. */
#define UIDLCTL_TMP_TEMPLATE "gannetctl-uidl.XXXXXX"

/* Largest gannet.index or dovecot-uidlist copied. An index of MAILDROP_MESSAGES_MAX messages is at
 * most 24 + 10^6 * (36 + 255 + 70) octets (361 MB), a Dovecot uidlist of as many messages with
 * ",S=" ",W=" names about 150 MB: beyond 1 GiB the file is not plausible and is refused rather
 * than copied into the temporary directory (often a tmpfs). */
#define UIDLCTL_COPY_MAX ((uint64_t)1 << 30)

/* Read/write unit of that copy: the lib's own I/O unit (RETR_CHUNK), small enough for the stack. */
#define UIDLCTL_COPY_CHUNK RETR_CHUNK

/* The files the scan reads from the Maildir root besides new/ and cur/. */
static const char *const uidlctl_copied[] = {MINDEX_NAME, "dovecot-uidlist"};

/* Copy ROOTFD/NAME into TMPFD/NAME when it is a regular file. A missing one (or one that is not
 * a regular file: the scan would ignore it too) is simply not copied. 0, or -1 after printing. */
static int copy_file(int rootfd, int tmpfd, const char *dir, const char *name)
{
	char chunk[UIDLCTL_COPY_CHUNK];
	uint64_t total = 0;
	struct stat st;
	int in, out, rc = -1;
	ssize_t n;

	in = openat(rootfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (in < 0) {
		if (errno == ENOENT || errno == ELOOP || errno == ENXIO)
			return 0;
		warn("%s/%s", dir, name);
		return -1;
	}
	if (fstat(in, &st) < 0) {
		warn("%s/%s", dir, name);
		close(in);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		close(in);
		return 0;
	}
	if ((uint64_t)st.st_size > UIDLCTL_COPY_MAX) {
		warnx("%s/%s: larger than %llu octets, refused", dir, name,
		      (unsigned long long)UIDLCTL_COPY_MAX);
		close(in);
		return -1;
	}
	out = openat(tmpfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (out < 0) {
		warn("temporary copy of %s", name);
		close(in);
		return -1;
	}
	/* Read to EOF rather than st_size: Dovecot appends to its uidlist in place. */
	while ((n = read(in, chunk, sizeof(chunk))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			warn("%s/%s: read", dir, name);
			goto out;
		}
		total += (uint64_t)n;
		if (total > UIDLCTL_COPY_MAX) {
			warnx("%s/%s: grew beyond %llu octets while copied, refused", dir, name,
			      (unsigned long long)UIDLCTL_COPY_MAX);
			goto out;
		}
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(out, chunk + off, (size_t)(n - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				warn("temporary copy of %s", name);
				goto out;
			}
			off += w;
		}
	}
	rc = 0;
out:
	close(in);
	if (close(out) < 0 && rc == 0) {
		warn("temporary copy of %s", name);
		rc = -1;
	}
	return rc;
}

/* Empty and remove the private directory TMP (TMPFD open on it; closed here). Only plain entries
 * and the empty new/ or cur/ a scan may have made are in it. */
static void remove_tmp(const char *tmp, int tmpfd)
{
	int dfd = fcntl(tmpfd, F_DUPFD_CLOEXEC, 0);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	struct dirent *de;

	if (d == NULL) {
		if (dfd >= 0)
			close(dfd);
	} else {
		while ((de = readdir(d)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			if (unlinkat(tmpfd, de->d_name, 0) < 0 && errno == EISDIR)
				(void)unlinkat(tmpfd, de->d_name, AT_REMOVEDIR);
		}
		closedir(d);
	}
	close(tmpfd);
	if (rmdir(tmp) < 0)
		warn("cannot remove %s", tmp);
}

/* Print ERROR (from maildir_scan: it names the private directory TMP) with the real Maildir
 * DIR in its place. */
static void scan_error(const char *error, const char *tmp, const char *dir)
{
	const char *at = strstr(error, tmp);

	if (at == NULL)
		warnx("%s", error);
	else
		warnx("%.*s%s%s", (int)(at - error), error, dir, at + strlen(tmp));
}

/* Build the private directory for DIR (REAL: its resolved path, ROOTFD open on it) and scan it
 * into SNAP. 0, or -1 after printing why. */
static int scan_readonly(const char *dir, const char *real, int rootfd, enum uidl_source source,
                         struct maildir_snapshot *snap)
{
	static const char *const subs[] = {"new", "cur"};
	char tmp[GANNET_PATH_MAX], target[GANNET_PATH_MAX];
	const char *tmpdir = getenv("TMPDIR"), *error = NULL;
	int tmpfd, rc = -1, n;

	if (tmpdir == NULL || tmpdir[0] != '/')
		tmpdir = "/tmp";
	n = snprintf(tmp, sizeof(tmp), "%s/%s", tmpdir, UIDLCTL_TMP_TEMPLATE);
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		warnx("TMPDIR path too long");
		return -1;
	}
	if (mkdtemp(tmp) == NULL) {
		warn("mkdtemp %s", tmp);
		return -1;
	}
	tmpfd = open(tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (tmpfd < 0) {
		warn("%s", tmp);
		(void)rmdir(tmp);
		return -1;
	}
	for (size_t i = 0; i < 2; i++) {
		struct stat st;

		/* A missing new/ or cur/ is not linked: the scan then makes an empty one in the
		 * private directory, as gannetd would make it in the real one. */
		if (fstatat(rootfd, subs[i], &st, 0) < 0 || !S_ISDIR(st.st_mode)) {
			warnx("%s: no %s/ directory (gannetd creates it at the next login)", dir,
			      subs[i]);
			continue;
		}
		n = snprintf(target, sizeof(target), "%s/%s", real, subs[i]);
		if (n < 0 || (size_t)n >= sizeof(target)) {
			warnx("%s: path too long", dir);
			goto out;
		}
		if (symlinkat(target, tmpfd, subs[i]) < 0) {
			warn("symlink in %s", tmp);
			goto out;
		}
	}
	for (size_t i = 0; i < sizeof(uidlctl_copied) / sizeof(uidlctl_copied[0]); i++)
		if (copy_file(rootfd, tmpfd, dir, uidlctl_copied[i]) < 0)
			goto out;
	if (maildir_scan(tmp, source, snap, &error) != MAILDIR_OK) {
		scan_error(error != NULL ? error : "maildir scan failed", tmp, dir);
		goto out;
	}
	rc = 0;
out:
	remove_tmp(tmp, tmpfd);
	return rc;
}

/* USER's Maildir as the auth process resolves it (gannetd/authcheck.c): the userdb line's
 * mail= field, else the configuration's mail_location. 0, or -1 after printing. */
static int resolve_maildir(const struct conf *c, const char *userdb, const char *user, char *out,
                           size_t size)
{
	struct userdb_entry *e = calloc(1, sizeof(*e));
	const char *error = NULL;
	int found, rc = -1;

	if (e == NULL)
		err(EXIT_FAIL, "calloc");
	found = userdb_lookup(userdb, user, e, &error);
	if (found < 0)
		warnx("%s", error);
	else if (found == 0)
		warnx("unknown user '%s' (not in %s)", user, userdb);
	else if (userdb_mail_path(e->mail[0] ? e->mail : c->mail_location, e, out, size, &error) <
	         0)
		warnx("%s: mail location: %s", user, error);
	else
		rc = 0;
	explicit_bzero(e, sizeof(*e)); /* holds the password hash and SCRAM verifiers */
	free(e);
	return rc;
}

static int print_snapshot(const struct maildir_snapshot *snap)
{
	for (size_t i = 0; i < snap->count; i++) {
		size_t len;
		const char *u = maildir_msg_uidl(snap, i, &len);

		printf("%zu %.*s\n", i + 1, (int)len, u);
	}
	if (fflush(stdout) == EOF || ferror(stdout)) {
		warn("stdout");
		return EXIT_FAIL;
	}
	return 0;
}

int cmd_uidl_list(const struct cmd_args *a)
{
	const char *user = args_get(a, "USER"), *want = args_get(a, "--source");
	const char *conf_path = NULL, *error = NULL, *userdb;
	char maildir[GANNET_PATH_MAX], *real = NULL;
	struct maildir_snapshot snap = {0};
	enum uidl_source source;
	sigset_t block, old;
	struct conf *c;
	int rootfd, rc = EXIT_FAIL;

	if (userdb_valid_name(user, strlen(user), &error) < 0) {
		warnx("bad user name: %s", error);
		return EXIT_FAIL;
	}
	if ((c = conf_from_args(a, &conf_path)) == NULL)
		return EXIT_FAIL;
	source = (enum uidl_source)c->uidl_source;
	if (want != NULL && uidl_source_parse(want, &source) < 0) {
		warnx("unknown UIDL source '%s' (gannet, maildir, dovecot or x-uidl)", want);
		free(c);
		return EXIT_USAGE;
	}
	userdb = a->user_file != NULL ? a->user_file : c->userdb;
	if (userdb[0] == '\0') {
		warnx("%s: no \"userdb = PATH\" line (give the user file with -f)", conf_path);
		goto out;
	}
	if (resolve_maildir(c, userdb, user, maildir, sizeof(maildir)) < 0)
		goto out;
	rootfd = open(maildir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0) {
		if (errno == ENOENT)
			warnx("%s: Maildir %s does not exist (no mail yet: gannetd creates it at "
			      "the first login)",
			      user, maildir);
		else
			warn("%s: Maildir %s", user, maildir);
		goto out;
	}
	if ((real = realpath(maildir, NULL)) == NULL) {
		warn("%s: Maildir %s", user, maildir);
		close(rootfd);
		goto out;
	}
	/* The library reports scan problems through the log: to stderr, warnings and up. */
	log_init("gannetctl", true, LOG_LEVEL_WARN);
	/* An interrupt must not leave the private directory behind: signals wait until it is
	 * removed (the scan is bounded: one readdir of new/ and cur/). */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGQUIT);
	sigprocmask(SIG_BLOCK, &block, &old);
	rc = scan_readonly(maildir, real, rootfd, source, &snap) < 0 ? EXIT_FAIL : 0;
	sigprocmask(SIG_SETMASK, &old, NULL);
	close(rootfd);
	if (rc == 0)
		rc = print_snapshot(&snap);
	maildir_snapshot_free(&snap);
out:
	free(real);
	free(c);
	return rc;
}
