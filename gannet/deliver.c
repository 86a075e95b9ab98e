/* Maildir and MDA delivery for the fetch client. A Maildir file is visible in new/ only once its
 * bytes are on disk, under a deterministic name, so delivery can be repeated without duplicates. */
#include "deliver.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "log.h"
#include "mbox.h"

static int maildir_sub(const struct deliverer *d, char *out, size_t size, const char *sub,
                       const char *name)
{
	return fmt_path(out, size, "%s/%s%s%s", d->acc->maildir, sub, name ? "/" : "",
	                name ? name : "");
}

int deliver_init(struct deliverer *d, const struct account *a, const char *state_dir,
                 struct gerr *e)
{
	static const char *const subs[] = {"new", "cur", "tmp"};
	char path[GANNET_PATH_MAX];

	memset(d, 0, sizeof(*d));
	d->acc = a;
	d->fd = -1;
	if (fmt_path(d->state_dir, sizeof(d->state_dir), "%s", state_dir) < 0)
		return gerr_set(e, EX_CONFIG, "state_dir too long"), -1;
	if (a->deliver == DELIVER_MBOX) {
		/* The directory of the mbox, as for a Maildir; the file itself is made 0600 by the
		 * first append. */
		const char *slash = strrchr(a->mbox, '/');
		if (slash == NULL || slash == a->mbox)
			return 0;
		if (fmt_path(path, sizeof(path), "%.*s", (int)(slash - a->mbox), a->mbox) < 0)
			return gerr_set(e, EX_CONFIG, "mbox path too long"), -1;
		if (mkdir_p(path, 0700) < 0)
			return gerr_sys(e, EX_CANTCREAT, "cannot create %s", path), -1;
		return 0;
	}
	if (a->deliver != DELIVER_MAILDIR)
		return 0;
	for (size_t i = 0; i < 3; i++) {
		if (maildir_sub(d, path, sizeof(path), subs[i], NULL) < 0)
			return gerr_set(e, EX_CONFIG, "maildir path too long"), -1;
		if (mkdir_p(path, 0700) < 0)
			return gerr_sys(e, EX_CANTCREAT, "cannot create %s", path), -1;
	}
	return 0;
}

void deliver_name(const char *account, const char *key, char out[DELIVER_NAME_MAX])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	char in[GANNET_ACCOUNT_NAME_MAX + 1 + GANNET_KEY_MAX + 1];
	size_t al = strlen(account), kl = strlen(key);

	/* The account is part of the name so two accounts can share one Maildir; the key is a
	 * UIDL that is not safe as a file name as it is ("../x", C-034), so it is hashed. */
	if (al > GANNET_ACCOUNT_NAME_MAX)
		al = GANNET_ACCOUNT_NAME_MAX;
	if (kl > GANNET_KEY_MAX)
		kl = GANNET_KEY_MAX;
	memcpy(in, account, al);
	in[al] = '\0';
	memcpy(in + al + 1, key, kl);
	if (EVP_Digest(in, al + 1 + kl, md, NULL, EVP_sha256(), NULL) != 1)
		fatalx("SHA-256 is not available"); /* names would collide: never go on */
	memcpy(out, "gannet-", 7);
	hex_encode(md, 20, out + 7);
}

bool deliver_exists(struct deliverer *d, const char *key, bool check_cur)
{
	char name[DELIVER_NAME_MAX], path[GANNET_PATH_MAX];
	struct stat st;
	struct dirent *de;
	size_t nl;
	DIR *dir;
	bool found = false;

	if (d->acc->deliver != DELIVER_MAILDIR)
		return false;
	deliver_name(d->acc->name, key, name);
	if (maildir_sub(d, path, sizeof(path), "new", name) == 0 && lstat(path, &st) == 0)
		return true;
	if (!check_cur || maildir_sub(d, path, sizeof(path), "cur", NULL) < 0 ||
	    (dir = opendir(path)) == NULL)
		return false;
	/* A mail reader moves new/NAME to cur/NAME:2,FLAGS. */
	nl = strlen(name);
	while (!found && (de = readdir(dir)) != NULL)
		found = strncmp(de->d_name, name, nl) == 0 &&
		        (de->d_name[nl] == '\0' || de->d_name[nl] == ':');
	closedir(dir);
	return found;
}

int deliver_begin(struct deliverer *d, const char *key, struct gerr *e)
{
	int r;

	if (strlen(key) > GANNET_KEY_MAX)
		return gerr_set(e, EX_SOFTWARE, "key too long"), -1;
	memcpy(d->key, key, strlen(key) + 1);
	deliver_name(d->acc->name, key, d->name);
	if (d->acc->deliver == DELIVER_MAILDIR)
		r = maildir_sub(d, d->tmp, sizeof(d->tmp), "tmp", d->name);
	else
		r = fmt_path(d->tmp, sizeof(d->tmp), "%s/%s.spool", d->state_dir, d->acc->name);
	if (r < 0)
		return gerr_set(e, EX_CONFIG, "path too long"), -1;
	/* O_TRUNC: a file left in tmp/ by a crash is simply overwritten. */
	d->fd = open(d->tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (d->fd < 0)
		return gerr_sys(e, EX_CANTCREAT, "cannot create %s", d->tmp), -1;
	d->bytes = 0;
	return 0;
}

int deliver_write(struct deliverer *d, const char *buf, size_t len, struct gerr *e)
{
	if (write_all(d->fd, buf, len) < 0)
		return gerr_sys(e, EX_IOERR, "cannot write %s", d->tmp), -1;
	d->bytes += len;
	return 0;
}

void deliver_abort(struct deliverer *d)
{
	if (d->fd >= 0) {
		close(d->fd);
		unlink(d->tmp);
	}
	d->fd = -1;
}

/* Run the filter on the finished file: 0 keep, 1 drop, -1 failure (message stays unfetched). */
static int run_filter(struct deliverer *d, struct gerr *e)
{
	char env_acc[GANNET_ACCOUNT_NAME_MAX + 16], env_key[GANNET_KEY_MAX + 16];
	char *env[] = {env_acc, env_key, NULL};
	int rc;

	snprintf(env_acc, sizeof(env_acc), "GANNET_ACCOUNT=%s", d->acc->name);
	snprintf(env_key, sizeof(env_key), "GANNET_KEY=%s", d->key);
	if (lseek(d->fd, 0, SEEK_SET) < 0)
		return gerr_sys(e, EX_IOERR, "lseek %s", d->tmp), -1;
	rc = run_command(d->acc->filter, d->fd, NULL, 0, NULL, env, d->acc->command_timeout, e);
	if (rc == 0 || rc == 1)
		return rc;
	if (rc > 1)
		gerr_set(e, EX_SOFTWARE, "filter exited with status %d", rc);
	return -1;
}

static int run_mda(struct deliverer *d, struct gerr *e)
{
	char env_acc[GANNET_ACCOUNT_NAME_MAX + 16], env_key[GANNET_KEY_MAX + 16];
	char *env[] = {env_acc, env_key, NULL};
	int rc;

	snprintf(env_acc, sizeof(env_acc), "GANNET_ACCOUNT=%s", d->acc->name);
	snprintf(env_key, sizeof(env_key), "GANNET_KEY=%s", d->key);
	if (lseek(d->fd, 0, SEEK_SET) < 0)
		return gerr_sys(e, EX_IOERR, "lseek %s", d->tmp), -1;
	rc = run_command(d->acc->mda, d->fd, NULL, 0, NULL, env, d->acc->command_timeout, e);
	if (rc > 0)
		gerr_set(e, EX_IOERR, "mda exited with status %d", rc);
	return rc == 0 ? 0 : -1;
}

int deliver_end(struct deliverer *d, struct gerr *e)
{
	char dest[GANNET_PATH_MAX];
	int r;

	if (d->acc->deliver == DELIVER_MAILDIR && fsync(d->fd) < 0) {
		gerr_sys(e, EX_IOERR, "cannot sync %s", d->tmp);
		goto fail;
	}
	if (d->acc->filter[0] != '\0') {
		r = run_filter(d, e);
		if (r < 0)
			goto fail;
		if (r == 1) {
			deliver_abort(d);
			return DELIVER_DROPPED;
		}
	}
	if (d->acc->deliver == DELIVER_MBOX) {
		r = mbox_append(d->acc, d->state_dir, d->fd, d->key, d->headers_only, e);
		close(d->fd);
		d->fd = -1;
		unlink(d->tmp);
		return r < 0 ? -1 : DELIVERED;
	}
	if (d->acc->deliver == DELIVER_MDA) {
		r = run_mda(d, e);
		close(d->fd);
		d->fd = -1;
		unlink(d->tmp);
		return r < 0 ? -1 : DELIVERED;
	}
	close(d->fd);
	d->fd = -1;
	/* rename() replaces an earlier copy of the same message: the delivery is idempotent. */
	if (maildir_sub(d, dest, sizeof(dest), "new", d->name) < 0 || rename(d->tmp, dest) < 0) {
		gerr_sys(e, EX_IOERR, "cannot move %s into new/", d->tmp);
		unlink(d->tmp);
		return -1;
	}
	d->uncommitted++;
	return DELIVERED;
fail:
	deliver_abort(d);
	return -1;
}

int deliver_commit(struct deliverer *d, struct gerr *e)
{
	char path[GANNET_PATH_MAX];

	if (d->uncommitted == 0)
		return 0;
	if (maildir_sub(d, path, sizeof(path), "new", NULL) < 0 || fsync_dir(path) < 0)
		return gerr_sys(e, EX_IOERR, "cannot sync %s/new", d->acc->maildir), -1;
	d->uncommitted = 0;
	return 0;
}
