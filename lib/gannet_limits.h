/* Every size and count limit of Gannet, in one place, each with the reason for its value. */
#ifndef GANNET_LIMITS_H
#define GANNET_LIMITS_H

/* RFC 2449 §4: a command line is at most 255 octets, CRLF included. */
#define POP3_CMD_MAX 255

/* RFC 5034 §4 lets AUTH continuation lines exceed 255 octets; an OAUTHBEARER token is the
 * largest we expect (a few kB). Beyond this the exchange is refused with -ERR. */
#define POP3_AUTH_LINE_MAX 16384

/* RFC 2449 §4: the first line of a response (greeting included) and each CAPA line are at most
 * 512 octets, CRLF included. Client text we echo back is truncated to fit. */
#define POP3_RESP_MAX 512

/* RFC 1939 §7: a unique-id is 1 to 70 characters in 0x21..0x7E. */
#define POP3_UIDL_MAX 70

/* Longest keyword of any POP3 command (RFC 1939, 2449, 2595, 5034, 6856): four letters. */
#define POP3_KEYWORD_MAX 4

/* User names: local or local@domain. 64 (RFC 5321 local part) + 1 + 255 (domain) would be the
 * address maximum; no real POP3 account needs more than this, and the bound keeps log lines short.
 */
#define USERNAME_MAX 256

/* A password arrives in one command line (PASS) or one SASL response; 1 kB is far above any real
 * password and keeps a hostile client from making the hash functions chew megabytes. */
#define PASSWORD_MAX 1024

/* A passwd-file line; Dovecot's format with a long extra field still fits in 4 kB. */
#define USERDB_LINE_MAX 4096

/* Paths we build (maildir location, message file names). */
#define GANNET_PATH_MAX 4096

/* Messages in one maildrop snapshot. A million is ten times the largest maildrop we benchmark and
 * bounds the memory one session can take (about 100 bytes a message). */
#define MAILDROP_MESSAGES_MAX 1000000

/* Bytes read from a message file per chunk while streaming RETR/TOP; also the amount we queue
 * before waiting for the socket to drain, so memory per session stays bounded. */
#define RETR_CHUNK      65536
#define RETR_HIGH_WATER (4 * RETR_CHUNK)

/* Bad or unknown commands before the session is closed (popa3d and Dovecot do the same). The
 * setting may be raised or lowered but never below 10, so that a clumsy human is not cut off. */
#define BAD_COMMANDS_MIN     10
#define BAD_COMMANDS_DEFAULT 20
#define BAD_COMMANDS_MAX     1000

/* RFC 1939 §3: an autologout timer must be at least 10 minutes. */
#define IDLE_TIMEOUT_MIN     600
#define IDLE_TIMEOUT_DEFAULT 600
#define IDLE_TIMEOUT_MAX     86400

/* A client that accepts no bytes at all for this long while we have output queued is gone. */
#define WRITE_STALL_TIMEOUT_DEFAULT 600

/* A TLS handshake (or a PROXY header) that has not finished in this many seconds is dropped. */
#define HANDSHAKE_TIMEOUT 30

/* One IPC message between Gannet processes (SOCK_SEQPACKET datagram). Holds a user record and the
 * pipelined client bytes handed over at login (at most a few command lines). */
#define IPC_MSG_MAX 16384

/* Bytes of pipelined client input a login process hands to the mail process with the session. */
#define HANDOVER_INPUT_MAX 8192

/* Config file: line length and number of list entries (listeners, trusted networks). */
#define CONF_LINE_MAX 1024
#define CONF_LIST_MAX 32

/* Worker processes of one kind in the shared isolation mode. */
#define WORKERS_MAX 64

/* Concurrent sessions per server; also caps descriptors. */
#define SESSIONS_MAX_DEFAULT 10000
#define SESSIONS_MAX_MAX     200000

#endif
