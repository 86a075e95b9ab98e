/* Every size, count and time limit of the fetch client, each with the reason for its value. */
#ifndef GANNET_CLIMITS_H
#define GANNET_CLIMITS_H

#include "gannet_limits.h"

/* Accounts in one config file: far more than anyone polls, and it bounds the account table. */
#define GANNET_ACCOUNTS_MAX 64

/* Account names become file names in the state directory: [A-Za-z0-9._-], 1..64 characters. */
#define GANNET_ACCOUNT_NAME_MAX 64

/* DNS names are at most 253 characters; room for an IPv6 literal too. */
#define GANNET_HOST_MAX 255

/* A reply line or a CAPA/LIST/UIDL listing line, CRLF included. RFC 2449 §4 caps them at 512; we
 * take twice that so a chatty greeting still works, and anything longer is a hostile server. */
#define GANNET_REPLY_MAX 1024

/* Messages in one maildrop. Each costs about 100 bytes of client memory, so a million is 100 MB:
 * the most a hostile STAT can make us allocate. */
#define GANNET_MESSAGES_MAX 1000000

/* Journal records kept per account (seen messages still on the server, plus pending ones). */
#define GANNET_JOURNAL_MAX (2 * GANNET_MESSAGES_MAX)

/* A journal key: "u:" + a 70-octet UIDL + "~N" for a duplicate UIDL, or "f:" + 40 hex digits. */
#define GANNET_KEY_MAX 96

/* A journal line: "S <time> <flags> <key>\n". */
#define GANNET_JOURNAL_LINE_MAX 160
/* Journal bytes per distinct key assumed when the lookup table is sized before a load: a kept
 * message has a "P key" and an "S time flags key" record, about 2 * key + 20 bytes, so 64 is
 * high for the usual 40-70 octet keys (the table is then larger than needed, at most 16 MiB at
 * GANNET_JOURNAL_MAX keys) and low only for keys under 22 octets (the table grows as before).
 * Sizing once saves the rehash cascade of a 100,000-message journal at every poll. */
#define GANNET_JOURNAL_BYTES_PER_KEY 64

/* Commands we run (password_command, mda, filter) and paths in the config file. */
#define GANNET_CMDLINE_MAX 1024

/* Output of password_command: an OAuth token can be several kB; a password is far shorter. */
#define GANNET_SECRET_MAX 8192

/* One message: the default cap on what a RETR may deliver, and the largest cap a user may set.
 * We never size a buffer from LIST (C-040); this only bounds the disk a hostile server fills. */
#define GANNET_MSG_LIMIT_DEFAULT (1024ULL * 1024 * 1024)
#define GANNET_MSG_LIMIT_MAX     (64ULL * 1024 * 1024 * 1024)

/* Seconds without progress on a read or write before the session is abandoned. The server's own
 * autologout is at least 10 minutes (RFC 1939 §3), so we never wait as long as that. */
#define GANNET_TIMEOUT_DEFAULT 120
#define GANNET_TIMEOUT_MAX     3600

/* A reply may take the timeout plus its size at this many bytes per second, no longer: a server
 * that trickles one byte a minute would otherwise never trip the inactivity timeout. */
#define GANNET_MIN_RATE 1024

/* The TLS handshake as a whole (including STLS) must finish within this many seconds. */
#define GANNET_HANDSHAKE_TIMEOUT 30

/* Commands in flight when the server offers PIPELINING. 256 commands of at most 30 octets fit in
 * any socket send buffer, so a write can never block while replies pile up unread (C-027). */
#define GANNET_PIPELINE_DEFAULT 32
#define GANNET_PIPELINE_MAX     256

/* Deliveries made durable with one directory fsync and one journal fsync. */
#define GANNET_COMMIT_BATCH 64

/* Accounts fetched in parallel. */
#define GANNET_JOBS_DEFAULT 4
#define GANNET_JOBS_MAX     32

/* Bytes read from the socket at once; also the decoder's output chunk. */
#define GANNET_IO_CHUNK 65536

/* How long an MDA, a filter or a password_command may run (seconds). */
#define GANNET_CMD_TIMEOUT_DEFAULT 300
#define GANNET_CMD_TIMEOUT_MAX     3600

/* The config file: far above any real one. */
#define GANNET_CONF_FILE_MAX (1024 * 1024)

/* --every: at least one minute unless asked otherwise in tests; at most a week. */
#define GANNET_EVERY_MAX (7 * 86400)

/* A SASL message the client sends (before base64): the largest is an OAuth bearer message, the
 * token (at most GANNET_SECRET_MAX) plus the user, host and fixed words; SCRAM and PLAIN are far
 * shorter. Anything gsasl produces above this is refused rather than sent. */
#define GANNET_SASL_MSG_MAX (GANNET_SECRET_MAX + USERNAME_MAX + GANNET_HOST_MAX + 64)

/* Round trips of one SASL exchange: SCRAM needs three challenges (empty, server-first,
 * server-final), LOGIN two; a server that keeps challenging is hostile. */
#define GANNET_SASL_ROUNDS_MAX 8

/* Channel binding data: tls-exporter is 32 bytes (RFC 9266); tls-unique is a Finished message,
 * 12 bytes in TLS 1.2 and at most 64 with any hash OpenSSL negotiates. */
#define GANNET_CB_MAX 64

/* How long name resolution may take before the connection attempt fails (seconds): a hanging
 * DNS server must not hang the client; the account timeout caps it further. */
#define GANNET_RESOLVE_TIMEOUT 30

/* mbox delivery: how long we wait for the fcntl lock and the dotlock of the mbox (seconds), and
 * how old a dotlock must be before it is taken as left by a crashed program (mutt and procmail
 * also break them after a few minutes; a real delivery holds one for well under a second). */
#define GANNET_MBOX_LOCK_WAIT 60
#define GANNET_DOTLOCK_STALE  300

/* The envelope sender on the mbox From_ line: an address is at most 254 octets (RFC 5321
 * §4.5.3.1.3 path limit 256 with brackets); longer or odd values become MAILER-DAEMON. */
#define GANNET_ENVELOPE_MAX 256

/* The start of a message searched for its Return-Path before an mbox append (the header of
 * ordinary mail is a few kB; a Return-Path beyond this is ignored). */
#define GANNET_MBOX_HEADER_SCAN 65536

/* A line of the mbox append record: "offset end key". */
#define GANNET_MBOX_RECORD_MAX 256

#endif
