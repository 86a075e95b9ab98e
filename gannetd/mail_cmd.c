/* The mail process's TRANSACTION command table: STAT, LIST, UIDL, RETR and TOP streamed as the
 * socket drains, DELE, RSET, NOOP, CAPA, LANG, and QUIT with its UPDATE (Maildir or mbox). The
 * session life cycle (login, lock, snapshot, input) is in mail.c. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "child.h"
#include "client.h"
#include "lang.h"
#include "log.h"
#include "mail_int.h"
#include "maildir.h"
#include "mbox.h"
#include "mechs.h"
#include "strnum.h"
#include "utf8.h"

static int quit_mbox(struct msess *s);

static char readbuf[RETR_CHUNK];
/* Input encoded per reservation in the output buffer. Its worst case (2 * 16 KiB + 3, every
 * byte a bare LF) makes libevent allocate 64 KiB chains, under glibc's 128 KiB mmap threshold:
 * bigger chains were mmapped, faulted in and unmapped for every chunk of a 10 MB RETR. */
#define RETR_ENC_PIECE (16 * 1024)

/* Per-message data of either store. */
static uint64_t msg_size(const struct msess *s, size_t i)
{
	return s->is_mbox ? mbox_msg_size(&s->msnap, i) : maildir_msg_size(&s->snap, i);
}

static const char *msg_uidl(const struct msess *s, size_t i, size_t *len_r)
{
	return s->is_mbox ? mbox_msg_uidl(&s->msnap, i, len_r)
	                  : maildir_msg_uidl(&s->snap, i, len_r);
}

/* The next octets of the message being streamed: read(2) on a Maildir file; an mbox message is
 * read by offset from the open mailbox. -1 with errno on failure, 0 at its end. */
static ssize_t retr_read(struct msess *s, void *buf, size_t len)
{
	size_t got = 0;

	if (!s->is_mbox)
		return read(s->retr_fd, buf, len);
	if (mbox_msg_read(s->mbox, &s->msnap, s->retr_idx, s->retr_off, buf, len, &got) !=
	    MBOX_OK) {
		log_warnx("session=%s event=mbox_read_failed error=\"%s\"", s->session,
		          mbox_last_error());
		errno = EIO;
		return -1;
	}
	s->retr_off += got;
	return (ssize_t)got;
}

/* Parse a message-number argument. Returns 0 with *IDX_R set; otherwise the reply is sent and
 * the result says whether it counts as a bad command: malformed numbers do, a well-formed number
 * naming a message that does not exist or is deleted does not (a client may simply be behind). */
static int msg_arg(struct msess *s, const char *arg, size_t len, size_t *idx_r)
{
	uint64_t n;

	if (strnum_u64(arg, len, 0, UINT64_MAX, &n) < 0) {
		lang_reply(s->bev, s->lang, TXT_BAD_MSGNUM);
		return CMD_ERR;
	}
	if (n == 0 || n > s->snap.count) {
		lang_reply(s->bev, s->lang, TXT_NO_SUCH_MSG);
		return CMD_OK;
	}
	if (s->deleted[n - 1]) {
		lang_reply(s->bev, s->lang, TXT_MSG_DELETED, n);
		return CMD_OK;
	}
	*idx_r = (size_t)(n - 1);
	return -1;
}

static bool args_ok(struct msess *s, struct pop3_cmd *cmd, int min, int max, const char *usage)
{
	if (cmd->argc < min || cmd->argc > max || cmd->bad_spacing) {
		lang_reply(s->bev, s->lang, TXT_USAGE, usage);
		return false;
	}
	return true;
}

static int cmd_stat(void *arg, struct pop3_cmd *cmd)
{
	struct msess *s = arg;

	if (!args_ok(s, cmd, 0, 0, "STAT"))
		return CMD_ERR;
	client_reply(s->bev, "+OK %zu %" PRIu64, s->snap.count - s->n_deleted,
	             s->snap.total_size - s->deleted_bytes);
	return CMD_OK;
}

static int listing(struct msess *s, struct pop3_cmd *cmd, int kind, const char *usage)
{
	size_t i;
	int r;

	if (!args_ok(s, cmd, 0, 1, usage))
		return CMD_ERR;
	if (cmd->argc == 1) {
		if ((r = msg_arg(s, cmd->argv[0], cmd->argl[0], &i)) >= 0)
			return r;
		if (kind == LISTING_LIST) {
			client_reply(s->bev, "+OK %zu %" PRIu64, i + 1, msg_size(s, i));
		} else {
			size_t len;
			const char *u = msg_uidl(s, i, &len);
			client_reply(s->bev, "+OK %zu %.*s", i + 1, (int)len, u);
		}
		return CMD_OK;
	}
	if (kind == LISTING_LIST)
		lang_reply(s->bev, s->lang, TXT_MAILDROP, s->snap.count - s->n_deleted,
		           s->snap.total_size - s->deleted_bytes);
	else
		lang_reply(s->bev, s->lang, TXT_UIDL_LIST);
	s->listing = kind;
	s->listing_pos = 0;
	s->busy = true;
	mail_pump(s);
	return s->busy ? CMD_SUSPEND : CMD_OK;
}

static int cmd_list(void *arg, struct pop3_cmd *cmd)
{
	return listing(arg, cmd, LISTING_LIST, "LIST [message]");
}

static int cmd_uidl(void *arg, struct pop3_cmd *cmd)
{
	return listing(arg, cmd, LISTING_UIDL, "UIDL [message]");
}

/* RFC 6856 §2.1/§5, S-127/S-130: outside UTF-8 mode a message whose header holds 8-bit bytes
 * (SMTPUTF8 mail) is refused with [UTF8] before any +OK; a body may hold anything (8BITMIME).
 * The header is read through retr_read, rewound afterwards for the RETR itself; a read error
 * here shows up again there. refuse_8bit_headers = no sends such messages as stored instead, for
 * sites whose clients never send UTF8 (raw Latin-1 headers of old mailers count as 8-bit too).
 * True when refused (FD closed). */
static bool refuse_utf8(struct msess *s, int fd, size_t idx)
{
	struct utf8_hdr_scan h;
	uint64_t seen = 0;
	ssize_t r;

	if (s->utf8 || !mail_env->conf.refuse_8bit_headers)
		return false;
	s->retr_fd = fd;
	s->retr_idx = idx;
	s->retr_off = 0;
	utf8_hdr_init(&h);
	while (!h.done && seen < UTF8_HEADER_SCAN_MAX &&
	       (r = retr_read(s, readbuf, sizeof(readbuf))) > 0) {
		utf8_hdr_feed(&h, readbuf, (size_t)r);
		seen += (uint64_t)r;
	}
	s->retr_off = 0;
	s->retr_fd = -1;
	if (fd >= 0 && lseek(fd, 0, SEEK_SET) < 0) {
		/* Sending from the wrong offset would corrupt the message: refuse it this time. */
		log_warn("session=%s event=rewind_failed msg=%zu", s->session, idx + 1);
		lang_reply(s->bev, s->lang, TXT_MSG_UNREADABLE, idx + 1);
		close(fd);
		return true;
	}
	if (!h.eight_bit)
		return false;
	log_info("session=%s ip=%s event=refused_utf8 user=%s msg=%zu", s->session, s->ip, s->user,
	         idx + 1);
	lang_reply(s->bev, s->lang, TXT_MSG_NEEDS_UTF8, idx + 1);
	if (fd >= 0)
		close(fd);
	return true;
}

static int start_retr(struct msess *s, size_t idx, bool top, uint64_t lines)
{
	int fd = s->is_mbox ? -1 : maildir_open_msg(s->maildir, &s->snap, idx);

	if (fd < 0 && !s->is_mbox) {
		/* Removed from outside since login (S-142): the session and numbering carry on. */
		log_warnx("session=%s ip=%s event=message_unreadable user=%s msg=%zu", s->session,
		          s->ip, s->user, idx + 1);
		lang_reply(s->bev, s->lang, errno == ENOENT ? TXT_MSG_REMOVED : TXT_MSG_UNREADABLE,
		           idx + 1);
		return CMD_OK;
	}
	if (refuse_utf8(s, fd, idx))
		return CMD_OK;
	if (top)
		lang_reply(s->bev, s->lang, TXT_TOP_FOLLOWS);
	else
		lang_reply(s->bev, s->lang, TXT_RETR_OCTETS, msg_size(s, idx));
	s->retr_fd = fd;
	s->retr_off = 0;
	s->retr_idx = idx;
	s->retr_is_top = top;
	pop3_enc_init(&s->enc, true, top ? lines : UINT64_MAX);
	s->busy = true;
	mail_pump(s);
	return s->busy ? CMD_SUSPEND : CMD_OK;
}

static int cmd_retr(void *arg, struct pop3_cmd *cmd)
{
	struct msess *s = arg;
	size_t idx;

	int r;

	if (!args_ok(s, cmd, 1, 1, "RETR message"))
		return CMD_ERR;
	if ((r = msg_arg(s, cmd->argv[0], cmd->argl[0], &idx)) >= 0)
		return r;
	return start_retr(s, idx, false, 0);
}

static int cmd_top(void *arg, struct pop3_cmd *cmd)
{
	struct msess *s = arg;
	uint64_t lines;
	size_t idx;

	int r;

	if (!args_ok(s, cmd, 2, 2, "TOP message lines"))
		return CMD_ERR;
	if ((r = msg_arg(s, cmd->argv[0], cmd->argl[0], &idx)) >= 0)
		return r;
	if (strnum_u64(cmd->argv[1], cmd->argl[1], 0, UINT64_MAX - 1, &lines) < 0) {
		lang_reply(s->bev, s->lang, TXT_BAD_LINES);
		return CMD_ERR;
	}
	return start_retr(s, idx, true, lines);
}

static int cmd_dele(void *arg, struct pop3_cmd *cmd)
{
	struct msess *s = arg;
	size_t idx;

	int r;

	if (!args_ok(s, cmd, 1, 1, "DELE message"))
		return CMD_ERR;
	if ((r = msg_arg(s, cmd->argv[0], cmd->argl[0], &idx)) >= 0)
		return r;
	s->deleted[idx] = 1;
	s->n_deleted++;
	s->deleted_bytes += msg_size(s, idx);
	lang_reply(s->bev, s->lang, TXT_MSG_DELETED_OK, idx + 1);
	return CMD_OK;
}

static int cmd_noop(void *arg, struct pop3_cmd *cmd)
{
	struct msess *s = arg;

	if (!args_ok(s, cmd, 0, 0, "NOOP"))
		return CMD_ERR;
	client_reply(s->bev, "+OK");
	return CMD_OK;
}

static int cmd_rset(void *arg, struct pop3_cmd *cmd)
{
	struct msess *s = arg;

	if (!args_ok(s, cmd, 0, 0, "RSET"))
		return CMD_ERR;
	memset(s->deleted, 0, s->snap.count);
	s->n_deleted = 0;
	s->deleted_bytes = 0;
	lang_reply(s->bev, s->lang, TXT_MAILDROP, s->snap.count, s->snap.total_size);
	return CMD_OK;
}

static int cmd_capa(void *arg, struct pop3_cmd *cmd)
{
	struct msess *s = arg;
	static const char head[] = "TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n"
	                           "USER\r\n";
	static const char tail[] = "IMPLEMENTATION Gannet\r\n.\r\n";
	char line[POP3_RESP_MAX];
	size_t n = 0;
	bool tls = s->tls[0] != '\0';

	if (!args_ok(s, cmd, 0, 0, "CAPA"))
		return CMD_ERR;
	lang_reply(s->bev, s->lang, TXT_CAPA_HEAD);
	bufferevent_write(s->bev, head, sizeof(head) - 1);
	/* SASL stays listed after login (RFC 5034 §3, S-063), like USER: every capability of
	 * AUTHORIZATION is listed again (S-040); only STLS drops out. */
	for (const struct mech_info *m = mech_table; m->name != NULL; m++) {
		if (!mech_offered(&mail_env->conf, m, true, tls, tls) ||
		    n + strlen(m->name) + 8 > sizeof(line))
			continue;
		n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%s", n == 0 ? "SASL " : " ",
		                      m->name);
	}
	if (n > 0) {
		bufferevent_write(s->bev, line, n);
		bufferevent_write(s->bev, "\r\n", 2);
	}
	/* RFC 2449 §6.7, S-041/S-042: this user's own value, EXPIRE NEVER included; §6.5:
	 * LOGIN-DELAY whenever AUTHORIZATION listed it (S-040), with this user's value. */
	if (s->expire_days < 0)
		bufferevent_write(s->bev, "EXPIRE NEVER\r\n", 14);
	else
		evbuffer_add_printf(bufferevent_get_output(s->bev), "EXPIRE %ld\r\n",
		                    s->expire_days);
	if (mail_env->conf.login_delay > 0)
		evbuffer_add_printf(bufferevent_get_output(s->bev), "LOGIN-DELAY %ld\r\n",
		                    s->login_delay);
	bufferevent_write(s->bev, LANG_CAPA_LINES, sizeof(LANG_CAPA_LINES) - 1);
	bufferevent_write(s->bev, tail, sizeof(tail) - 1);
	return CMD_OK;
}

/* A message file name for the log: anyone who can write to the Maildir picks these names, so
 * control bytes are escaped (a newline would forge a log line fail2ban believes). */
static const char *log_name(const struct maildir_snapshot *snap, size_t i, char *out, size_t size)
{
	char name[MAILDIR_NAME_BUF];
	const char *n = maildir_msg_name(snap, i, name);

	return log_sanitize(out, size, n, strlen(n));
}

/* UPDATE (RFC 1939 §6): add what EXPIRE removes, journal it all (crash-safe: the next login
 * finishes an UPDATE a crash cut short, see lib/maildir.h), remove the files, drop the journal,
 * then release the maildrop. */

static int cmd_quit(void *arg, struct pop3_cmd *cmd)
{
	struct msess *s = arg;
	size_t failed = 0, asked, expired, total;
	const char *error = NULL;
	int jr;

	if (!args_ok(s, cmd, 0, 0, "QUIT"))
		return CMD_ERR;
	if (s->is_mbox)
		return quit_mbox(s);
	/* A dotlock taken over after a stall (lib/maildir.h): the maildrop may be another's now. */
	if (maildir_lock_refresh(&s->lock) < 0) {
		lang_reply(s->bev, s->lang, TXT_LOCK_LOST);
		return CMD_CLOSE;
	}
	asked = s->n_deleted;
	/* RFC 2449 §6.7, S-043: retrieved (whole RETR, never TOP) long enough ago. */
	expired = maildir_expire_mark(&s->snap, s->deleted, time(NULL), s->expire_days);
	if (expired > 0) {
		s->n_deleted = 0;
		s->deleted_bytes = 0;
		for (size_t i = 0; i < s->snap.count; i++) {
			if (!s->deleted[i])
				continue;
			s->n_deleted++;
			s->deleted_bytes += maildir_msg_size(&s->snap, i);
		}
	}
	total = s->n_deleted;
	jr = maildir_journal_write(s->maildir, &s->snap, s->deleted, &error);
	if (jr != MAILDIR_OK) {
		/* Nothing is removed without a journal: the UPDATE did not start. */
		log_warnx("session=%s ip=%s event=update_failed user=%s error=\"%s\"", s->session,
		          s->ip, s->user, error);
		failed = total;
	}
	for (size_t i = 0; i < s->snap.count && jr == MAILDIR_OK; i++) {
		char name[4 * MAILDIR_NAME_BUF];

		if (!s->deleted[i])
			continue;
		if (maildir_unlink_msg(s->maildir, &s->snap, i) < 0) {
			log_warn("session=%s ip=%s event=delete_failed user=%s file=%s", s->session,
			         s->ip, s->user, log_name(&s->snap, i, name, sizeof(name)));
			failed++;
		}
		/* Tests only: widen the window a crash test aims at. */
		if (mail_env->conf.test_update_delay_ms > 0)
			usleep((useconds_t)mail_env->conf.test_update_delay_ms * 1000);
	}
	if (jr == MAILDIR_OK && total > 0 &&
	    maildir_journal_finish(s->maildir, &error) != MAILDIR_OK)
		log_warnx("session=%s ip=%s event=update_journal_kept user=%s error=\"%s\"",
		          s->session, s->ip, s->user, error);
	if (expired > 0)
		log_info("session=%s ip=%s event=expire user=%s expired=%zu expire_days=%ld",
		         s->session, s->ip, s->user, expired, s->expire_days);
	s->n_deleted -= failed;
	s->quit = true;
	/* The index drops the removed messages; written before the lock goes. */
	maildir_snapshot_save(s->maildir, &s->snap);
	/* Unlock before answering, so a client that reconnects at once is not told [IN-USE]. */
	maildir_lock_drop(&s->lock);
	if (failed)
		lang_reply(s->bev, s->lang, TXT_UPDATE_FAILED,
		           jr == MAILDIR_ERR_PERM ? "SYS/PERM" : "SYS/TEMP", failed);
	else if (expired > 0)
		lang_reply(s->bev, s->lang, TXT_BYE_EXPIRED, asked, expired);
	else
		lang_reply(s->bev, s->lang, TXT_BYE_DELETED, s->n_deleted);
	return CMD_CLOSE;
}

/* LANG (RFC 6856 §3) is valid in TRANSACTION too. */
static int cmd_lang(void *arg, struct pop3_cmd *cmd)
{
	struct msess *s = arg;

	return lang_cmd(s->bev, cmd, s->utf8, &s->lang);
}

const struct cmd_def mail_trans_cmds[] = {
    {"STAT", cmd_stat, 0},   {"LIST", cmd_list, 0},   {"RETR", cmd_retr, 0},
    {"DELE", cmd_dele, 0},   {"NOOP", cmd_noop, 0},   {"RSET", cmd_rset, 0},
    {"QUIT", cmd_quit, 0},   {"TOP", cmd_top, 0},     {"UIDL", cmd_uidl, 0},
    {"CAPA", cmd_capa, 0},   {"USER", NULL, CMD_BAD}, {"PASS", NULL, CMD_BAD},
    {"APOP", NULL, CMD_BAD}, {"AUTH", NULL, CMD_BAD}, {"STLS", NULL, CMD_BAD},
    {"LANG", cmd_lang, 0},   {"UTF8", NULL, CMD_BAD}, /* UTF8: AUTHORIZATION only (S-128) */
    {NULL, NULL, 0},
};

/* Encode IN[0..LEN) straight into OUT's last chain: no private buffer, no copy into the
 * evbuffer. -1 when no memory can be reserved. */
static int retr_encode(struct evbuffer *out, struct pop3_enc *enc, const char *in, size_t len)
{
	while (len > 0 && !pop3_enc_done(enc)) {
		struct evbuffer_iovec v;
		size_t k = len < RETR_ENC_PIECE ? len : RETR_ENC_PIECE;

		if (evbuffer_reserve_space(out, (ev_ssize_t)(2 * k + 3), &v, 1) != 1)
			return -1;
		/* The chain may have more room than asked: use it, within the worst case. */
		if ((v.iov_len - 3) / 2 > k)
			k = len < (v.iov_len - 3) / 2 ? len : (v.iov_len - 3) / 2;
		v.iov_len = pop3_enc_feed(enc, in, k, v.iov_base);
		if (evbuffer_commit_space(out, &v, 1) < 0)
			return -1;
		in += k;
		len -= k;
	}
	return 0;
}

/* Queue more of a listing or a message while the output buffer is below the high-water mark. */
void mail_pump(struct msess *s)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);

	while (s->busy && evbuffer_get_length(out) < RETR_HIGH_WATER) {
		if (s->listing != LISTING_NONE) {
			char buf[LISTING_SLICE + 128];
			size_t n = 0;

			while (s->listing_pos < s->snap.count && n < LISTING_SLICE) {
				size_t i = s->listing_pos++;
				int w;

				if (s->deleted[i])
					continue;
				if (s->listing == LISTING_LIST) {
					w = snprintf(buf + n, sizeof(buf) - n,
					             "%zu %" PRIu64 "\r\n", i + 1, msg_size(s, i));
				} else {
					size_t len;
					const char *u = msg_uidl(s, i, &len);
					w = snprintf(buf + n, sizeof(buf) - n, "%zu %.*s\r\n",
					             i + 1, (int)len, u);
				}
				if (w > 0)
					n += (size_t)w;
			}
			if (s->listing_pos >= s->snap.count) {
				memcpy(buf + n, ".\r\n", 3);
				n += 3;
				s->listing = LISTING_NONE;
				s->busy = false;
			}
			evbuffer_add(out, buf, n);
			continue;
		}

		ssize_t r = retr_read(s, readbuf, sizeof(readbuf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			/* Half a message is on the wire already; no -ERR can follow it. */
			log_warn("session=%s ip=%s event=read_failed user=%s msg=%zu", s->session,
			         s->ip, s->user, s->retr_idx + 1);
			mail_close_after_flush(s);
			return;
		}
		if (r > 0 && retr_encode(out, &s->enc, readbuf, (size_t)r) < 0) {
			log_warnx("session=%s ip=%s event=out_of_memory user=%s msg=%zu",
			          s->session, s->ip, s->user, s->retr_idx + 1);
			mail_close_after_flush(s);
			return;
		}
		if (r == 0 || pop3_enc_done(&s->enc)) {
			uint64_t listed = msg_size(s, s->retr_idx);
			char name[4 * MAILDIR_NAME_BUF];
			char end[3 + 3]; /* pop3_enc_finish's CRLF at most, then ".\r\n" */
			size_t n = pop3_enc_finish(&s->enc, end);

			memcpy(end + n, ".\r\n", 3);
			evbuffer_add(out, end, n + 3);
			if (s->retr_fd >= 0)
				close(s->retr_fd);
			s->retr_fd = -1;
			s->busy = false;
			if (!s->retr_is_top && s->is_mbox) {
				/* mbox keeps no seen flags or retrieval times (no EXPIRE). */
				s->retrieved++;
				s->retrieved_bytes += s->enc.size;
			} else if (!s->retr_is_top) {
				if (s->enc.size != listed)
					log_warnx(
					    "session=%s ip=%s event=size_changed user=%s "
					    "file=%s listed=%" PRIu64 " sent=%" PRIu64,
					    s->session, s->ip, s->user,
					    log_name(&s->snap, s->retr_idx, name, sizeof(name)),
					    listed, s->enc.size);
				s->retrieved++;
				s->retrieved_bytes += s->enc.size;
				/* For EXPIRE, kept in the index. */
				maildir_msg_set_retrieved(&s->snap, s->retr_idx, time(NULL));
				/* Seen for IMAP on the same Maildir; the UIDL does not change. */
				if (maildir_mark_seen(s->maildir, &s->snap, s->retr_idx) < 0 &&
				    errno != ENOENT)
					log_warn(
					    "session=%s event=mark_seen_failed file=%s", s->session,
					    log_name(&s->snap, s->retr_idx, name, sizeof(name)));
			}
		}
	}
}

static int quit_mbox(struct msess *s)
{
	const char *error = NULL;
	size_t asked = s->n_deleted;
	int r = asked > 0 ? mbox_update(s->mbox, &s->msnap, s->deleted, &error) : MBOX_OK;

	if (r != MBOX_OK) {
		log_warnx("session=%s ip=%s event=update_failed user=%s error=\"%s\"", s->session,
		          s->ip, s->user, error);
		s->n_deleted = 0;
		s->deleted_bytes = 0;
	}
	s->quit = true;
	/* Unlock before answering, so a client that reconnects at once is not told [IN-USE]. */
	mbox_close(s->mbox);
	s->mbox = NULL;
	if (r != MBOX_OK)
		lang_reply(s->bev, s->lang, TXT_UPDATE_FAILED,
		           r == MBOX_ERR_PERM ? "SYS/PERM" : "SYS/TEMP", asked);
	else
		lang_reply(s->bev, s->lang, TXT_BYE_DELETED, asked);
	return CMD_CLOSE;
}
