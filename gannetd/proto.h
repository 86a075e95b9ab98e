/* The typed messages between gannetd's processes (see docs/architecture.md for the flow). */
#ifndef GANNETD_PROTO_H
#define GANNETD_PROTO_H

#include <stdbool.h>
#include <stdint.h>

/* Every channel starts with MSG_HELLO from the master; IPC_VERSION (lib/ipc.h) is checked there.
 * Fields are listed in the order they are put; "+fd" means a descriptor travels with it. */
enum msg_type {
	/* master -> child: u32 version, u32 kind, u32 generation, u32 foreground, data config,
	 * data TLS session ticket keys (login processes; empty for the others) */
	MSG_HELLO = 1,
	/* master -> child: stop taking work, finish what is open, then exit */
	MSG_SHUTDOWN,
	/* master -> login, +fd client socket: u64 conn_id, u32 implicit_tls, str session_id */
	MSG_CONN,
	/* login|mail -> master: u64 conn_id: this connection is over (counted once) */
	MSG_CONN_DONE,
	/* master -> auth and master -> login, +fd: u32 login_id; the two ends of one channel
	 * between that login process and the auth process */
	MSG_AUTH_CLIENT,
	/* login -> auth: u32 req_id, u32 method (enum auth_method), str user, data password (PASS)
	 * or digest (APOP), str apop_timestamp ("" for PASS), str ip, str session_id */
	MSG_AUTH_REQ,
	/* auth -> login: u32 req_id, u32 result (enum auth_result), data token, str user (the
	 * authenticated name, for the log), data server_final (SASL data the client must see
	 * before +OK: sent as a last "+ " challenge; empty for none) */
	MSG_AUTH_RES,
	/* login -> master, +fd: u64 conn_id, data token, str session_id, str ip, str tls,
	 * u32 utf8 (RFC 6856 UTF8 mode is on), str lang (the LANG tag in use, "en"),
	 * data pipelined input */
	MSG_HANDOVER,
	/* master -> auth: u32 master_req, u32 login_id, data token */
	MSG_REDEEM,
	/* auth -> master: u32 master_req, u32 ok, str user, u32 uid, u32 gid, str maildir,
	 * u32 expire, u32 login_delay (the user file's policy values, POLICY_WIRE_*) */
	MSG_REDEEM_RES,
	/* master -> mail, +fd: u64 conn_id, str session_id, str ip, str tls, str user, u32 uid,
	 * u32 gid, str maildir, u32 expire, u32 login_delay, u32 utf8, str lang (both from
	 * MSG_HANDOVER), data pipelined input */
	MSG_SESSION,
	/* login -> auth: u32 req_id, str mechanism (upper case), u32 has_initial, data initial
	 * response (decoded), str ip, str session_id, str cb_type ("tls-exporter", "tls-unique" or
	 * "" without TLS), data cb_data (the channel binding bytes of this TLS connection) */
	MSG_SASL_START,
	/* login -> auth: u32 req_id, data client response (decoded) */
	MSG_SASL_STEP,
	/* login -> auth: u32 req_id: the client cancelled with "*" or went away */
	MSG_SASL_ABORT,
	/* auth -> login: u32 req_id, data challenge (sent base64-encoded after "+ ") */
	MSG_SASL_CHALLENGE,
	/* master -> auth: u32 ctl_id, str command line from gannetctl (control socket) */
	MSG_CTL_REQ,
	/* auth -> master: u32 ctl_id, u32 status (0 ok, 1 failed), data text for gannetctl */
	MSG_CTL_RES,
};

enum auth_method {
	AUTH_METHOD_PASS = 0,
	AUTH_METHOD_APOP = 1,
};

enum proc_kind { PROC_MASTER, PROC_LOGIN, PROC_AUTH, PROC_MAIL };

enum auth_result {
	AUTH_OK = 0,
	AUTH_FAIL = 1,     /* wrong password or unknown user: the same answer for both */
	AUTH_TEMPFAIL = 2, /* user database unreadable or broken: [SYS/TEMP] */
	AUTH_BLOCKED = 3,  /* the client address is refused after too many failures */
};

/* An auth token proves to the master that the auth process accepted this login. */
#define AUTH_TOKEN_LEN 16

/* Seconds a token stays redeemable; the login hands over at once, so this only bounds memory. */
#define AUTH_TOKEN_TTL 60

/* A user's expire= or login_delay= on the wire: the value (days, seconds), or one of these. The
 * master passes them through unread; the mail process checks the range and applies the
 * configuration (userdb_policy_expire, userdb_policy_login_delay). */
#define POLICY_WIRE_UNSET 0xFFFFFFFFu /* not in the user file */
#define POLICY_WIRE_NEVER 0xFFFFFFFEu /* expire=never */

static inline uint32_t policy_to_wire(bool has, long v)
{
	return !has ? POLICY_WIRE_UNSET : v < 0 ? POLICY_WIRE_NEVER : (uint32_t)v;
}

/* Decode W: 0 with *HAS_R and *V_R, or -1 when W is out of range (at most MAX, NEVER only with
 * NEVER_OK). */
static inline int policy_from_wire(uint32_t w, long max, bool never_ok, bool *has_r, long *v_r)
{
	*has_r = w != POLICY_WIRE_UNSET;
	*v_r = w == POLICY_WIRE_NEVER ? -1 : (long)w;
	if (!*has_r)
		return 0;
	if (w == POLICY_WIRE_NEVER)
		return never_ok ? 0 : -1;
	return (long)w <= max ? 0 : -1;
}

/* The channel to the master is always this descriptor in a child. */
#define CHILD_CHANNEL_FD 3

#endif
