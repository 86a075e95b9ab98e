"""gannet against a scripted, misbehaving server (hostile.py): malformed and over-long replies,
endless listings and bodies, duplicate and missing UIDLs, STLS injection, stalls and drops
mid-message, bad certificates, and the protocol rules of the client checklist (C-0xx)."""

import json
import os
import resource
import time

import pytest

import clienttest as ct
from clienttest import g
from hostile import MiniPop, server_ctx

MSGS = [g.header("one") + b"first\n", g.header("two") + b"second\n.\n..dots\n",
        g.header("three") + b"third\n"]


@pytest.fixture
def pop():
    servers = []

    def make(cls=MiniPop, **kw):
        s = cls(**kw)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


def limit_memory():
    # 512 MB of address space: a client that buffers a hostile stream would die here.
    resource.setrlimit(resource.RLIMIT_AS, (512 << 20, 512 << 20))


def run_bounded(client, *args, seconds=20):
    """Run gannet with a memory cap (not under ASan) and check it ends within SECONDS."""
    t0 = time.monotonic()
    kw = {} if g.ASAN else {"preexec_fn": limit_memory}
    p = client.popen(*args, **kw)
    out, err = p.communicate(timeout=ct.t(seconds + 10))
    took = time.monotonic() - t0
    assert took < ct.t(seconds), "took %.1f s" % took
    return p.returncode, out.decode(), err.decode()


def test_plain_fetch_and_once(pop, client):
    s = pop(messages=MSGS)
    client.write_config({"acct": s.account()})
    r = client.fetch(args=("--json",))
    assert r.returncode == 0, r.stderr
    assert sorted(client.delivered().values()) == sorted(ct.local_form(m) for m in MSGS)
    r = client.fetch(args=("--json",))
    assert json.loads(r.stdout)["new"] == 0
    assert s.commands().count(b"RETR") == 3


def test_apop_preferred_without_tls(pop, client):
    """tls = none: APOP (RFC 1939 §7 digest, C-008) rather than the password in clear text."""
    s = pop(messages=MSGS[:1])
    client.write_config({"acct": s.account(password="tanstaaf")})
    s.password = "tanstaaf"
    r = client.fetch()
    assert r.returncode == 0, r.stderr
    apop = [ln for ln in s.log if ln.startswith(b"APOP")]
    assert apop == [b"APOP u c4c9334bac560ecc979e58001b3e22fb"]  # the RFC 1939 example
    assert b"PASS" not in s.commands()


def test_no_apop_without_timestamp(pop, client):
    """C-009: no <...@...> in the greeting, no APOP attempt."""
    s = pop(messages=MSGS[:1], greeting="+OK ready")
    client.write_config({"acct": s.account(auth="user")})  # clear text needs an explicit auth
    assert client.fetch().returncode == 0
    assert b"APOP" not in s.commands()


def test_auth_plain_and_long_user(pop, client):
    """C-006/C-018: a 300-character user goes through AUTH PLAIN with a continuation line."""
    long_user = "u" * 240 + "@example.org"
    s = pop(messages=MSGS[:1], mode="tls", cert=CERTS["good"], user=long_user)
    client.write_config({"acct": s.account(ca_file=CERTS["ca"])})
    r = client.fetch()
    assert r.returncode == 0, r.stderr
    assert b"AUTH PLAIN" in s.log and b"USER" not in s.commands()
    # the short user gets the initial response on the AUTH line itself
    s2 = pop(messages=MSGS[:1], mode="tls", cert=CERTS["good"])
    client.write_config({"acct": s2.account(ca_file=CERTS["ca"])})
    assert client.fetch().returncode == 0
    assert any(ln.startswith(b"AUTH PLAIN ") for ln in s2.log)


def test_auth_login_bad_challenge(pop, client):
    """C-019: a challenge that is not base64 is answered with '*'."""
    class BadLogin(MiniPop):
        def cmd_auth(self, sess, arg):
            sess.conn.line("+ Zm9v!")
            self.log.append(sess.conn.readline())
            sess.conn.line("-ERR cancelled")

    s = pop(BadLogin, messages=MSGS[:1], mode="tls", cert=CERTS["good"])
    client.write_config({"acct": s.account(ca_file=CERTS["ca"], auth="login")})
    r = client.fetch()
    assert r.returncode == ct.EX_PROTOCOL
    assert s.log[-1] == b"*"


def test_malformed_greeting(pop, client):
    s = pop(greeting="HELLO there")
    client.write_config({"acct": s.account()})
    r = client.fetch()
    assert r.returncode == ct.EX_PROTOCOL
    assert "malformed reply" in r.stderr


def test_okay_is_not_ok(pop, client):
    """C-002: '+OKAY' is a protocol error, not success."""
    s = pop(greeting="+OKAY hi")
    client.write_config({"acct": s.account()})
    assert client.fetch().returncode == ct.EX_PROTOCOL


def test_over_long_reply_line(pop, client):
    class Long(MiniPop):
        def cmd_stat(self, sess, arg):
            sess.conn.send(b"+OK " + b"1" * 200000)
            self.halt.wait(4)

    s = pop(Long, messages=MSGS)
    client.write_config({"acct": s.account()})
    rc, out, err = run_bounded(client, "fetch", seconds=8)
    assert rc == ct.EX_PROTOCOL
    assert "longer than" in err


def test_endless_listing(pop, client):
    class Endless(MiniPop):
        def cmd_uidl(self, sess, arg):
            sess.conn.send(b"+OK\r\n")
            i = 0
            while True:
                i += 1
                sess.conn.send(b"".join(b"%d u%d\r\n" % (i, j) for j in range(1000)))

    s = pop(Endless, messages=MSGS)
    client.write_config({"acct": s.account()})
    rc, out, err = run_bounded(client, "fetch", seconds=10)
    assert rc == ct.EX_PROTOCOL, err
    assert client.delivered() == {}


def test_endless_body(pop, client):
    class Endless(MiniPop):
        def cmd_retr(self, sess, arg):
            sess.conn.send(b"+OK\r\n")
            chunk = b"x" * 1000 + b"\r\n"
            while True:
                sess.conn.send(chunk * 64)

    s = pop(Endless, messages=MSGS[:1])
    client.write_config({"acct": s.account(max_size="1M")})
    rc, out, err = run_bounded(client, "fetch", seconds=10)
    assert rc == ct.EX_PROTOCOL, err
    assert "max_size" in err
    assert client.delivered() == {} and client.tmp_files() == []


def test_impossible_stat(pop, client):
    class Huge(MiniPop):
        def cmd_stat(self, sess, arg):
            sess.conn.line("+OK 5000000000 1")

    s = pop(Huge, messages=MSGS)
    client.write_config({"acct": s.account()})
    rc, out, err = run_bounded(client, "fetch", seconds=5)
    assert rc == ct.EX_PROTOCOL


def test_duplicate_uidls(pop, client):
    """C-033: two messages with one UIDL are both fetched once, and never again."""
    msgs = MSGS + [g.header("four") + b"fourth\n", g.header("five") + b"fifth\n"]
    s = pop(messages=msgs, uidls=["a~b", "same", "a~b", "a~b", "d2:u:a~b"])
    client.write_config({"acct": s.account()})
    assert client.fetch().returncode == 0
    assert sorted(client.delivered().values()) == sorted(ct.local_form(m) for m in msgs)
    r = client.fetch(args=("--json",))
    assert json.loads(r.stdout)["new"] == 0


def test_uidl_listing_number_twice(pop, client):
    class Twice(MiniPop):
        def cmd_uidl(self, sess, arg):
            sess.conn.send("+OK\r\n1 a\r\n1 b\r\n.\r\n")

    s = pop(Twice, messages=MSGS[:2])
    client.write_config({"acct": s.account()})
    assert client.fetch().returncode == ct.EX_PROTOCOL
    assert client.delivered() == {}


def test_unsafe_uidl(pop, client, tmp_path):
    """C-034: a unique-id like ../../x never becomes a path."""
    s = pop(messages=MSGS[:1], uidls=["../../../../escape"])
    client.write_config({"acct": s.account()})
    assert client.fetch().returncode == 0
    assert len(client.delivered()) == 1
    assert not any("escape" in n for _r, _d, f in os.walk(tmp_path) for n in f)


def test_missing_uidl_uses_fingerprint(pop, client):
    """No UIDL (C-032): TOP n 0 fingerprints identify the messages; fetched exactly once."""
    class NoUidl(MiniPop):
        capa_extra = ["TOP", "PIPELINING"]

        def cmd_uidl(self, sess, arg):
            sess.conn.line("-ERR not supported")

    s = pop(NoUidl, messages=MSGS)
    client.write_config({"acct": s.account()})
    assert client.fetch().returncode == 0, client
    assert sorted(client.delivered().values()) == sorted(ct.local_form(m) for m in MSGS)
    r = client.fetch(args=("--json",))
    assert json.loads(r.stdout)["new"] == 0
    assert s.commands().count(b"RETR") == 3


def test_no_capa_no_uidl_no_top(pop, client):
    """Without UIDL and TOP gannet cannot tell messages apart: it leaves them and says so."""
    class Bare(MiniPop):
        def cmd_capa(self, sess, arg):
            sess.conn.line("-ERR what?")

        def cmd_uidl(self, sess, arg):
            sess.conn.line("-ERR what?")

        def cmd_top(self, sess, arg):
            sess.conn.line("-ERR what?")

    s = pop(Bare, messages=MSGS)
    client.write_config({"acct": s.account()})
    r = client.fetch(args=("--json",))
    assert r.returncode == 0
    assert json.loads(r.stdout)["skipped"] == 3
    assert client.delivered() == {}


def test_uidl_missing_for_one_message(pop, client):
    class Partial(MiniPop):
        def cmd_uidl(self, sess, arg):
            sess.conn.send("+OK\r\n1 a\r\n3 c\r\n.\r\n")

    s = pop(Partial, messages=MSGS)
    client.write_config({"acct": s.account()})
    assert client.fetch().returncode == 0
    assert len(client.delivered()) == 3
    assert json.loads(client.fetch(args=("--json",)).stdout)["new"] == 0


def test_exact_bytes_split_writes(pop, client):
    """C-001/C-041: dot lines, NUL, 0xff and a bare CR survive; the server writes one byte at a
    time, so CRLF.CRLF arrives split at every possible place."""
    body = g.header("odd") + b".\n..\n.x\nnul\0here \xff\xfe\nbare\rcr\nlast\n"

    class Trickle(MiniPop):
        def cmd_retr(self, sess, arg):
            m = self.msg(sess, arg)
            for b in b"+OK\r\n" + g.retr_wire(m[2]):
                sess.conn.send(bytes([b]))

    s = pop(Trickle, messages=[body])
    client.write_config({"acct": s.account()})
    assert client.fetch().returncode == 0
    assert list(client.delivered().values()) == [ct.local_form(body)]


def test_list_size_lies(pop, client):
    """C-040: LIST says 10 octets, RETR sends 1 MB: streamed to disk, kept whole."""
    big = g.big_message(1 << 20, seed=5)

    class Liar(MiniPop):
        def cmd_list(self, sess, arg):
            if arg:
                return sess.conn.line("+OK %s 10" % arg.split()[0])
            sess.conn.send("+OK\r\n1 10\r\n.\r\n")

    s = pop(Liar, messages=[big])
    client.write_config({"acct": s.account()})
    assert client.fetch().returncode == 0
    assert list(client.delivered().values()) == [ct.local_form(big)]


def test_stall_mid_retr(pop, client):
    class Stall(MiniPop):
        def cmd_retr(self, sess, arg):
            m = self.msg(sess, arg)
            wire = g.retr_wire(m[2])
            sess.conn.send(b"+OK\r\n" + wire[: len(wire) // 2])
            self.halt.wait(6)

    s = pop(Stall, messages=MSGS[:1])
    client.write_config({"acct": s.account(timeout=2, keep="no")})
    rc, out, err = run_bounded(client, "fetch", seconds=8)
    assert rc == ct.EX_TEMPFAIL, err
    assert "sent nothing for 2 s" in err
    assert client.delivered() == {} and client.tmp_files() == []
    assert b"DELE" not in s.commands() and b"QUIT" not in s.commands()


def test_trickle_reply(pop, client):
    """A server that sends one byte every half second never trips the inactivity timeout; the
    reply deadline (timeout + size at GANNET_MIN_RATE) still ends it."""
    class Trickle(MiniPop):
        def cmd_stat(self, sess, arg):
            for _ in range(100):
                sess.conn.send(b"+")
                time.sleep(0.5)

    s = pop(Trickle, messages=MSGS)
    client.write_config({"acct": s.account(timeout=2)})
    rc, out, err = run_bounded(client, "fetch", seconds=8)
    assert rc == ct.EX_TEMPFAIL, err
    assert "too slowly" in err


def test_drop_mid_message_then_recover(pop, client):
    class Drop(MiniPop):
        drop = True

        def cmd_retr(self, sess, arg):
            m = self.msg(sess, arg)
            if self.drop and m[0] == 2:
                wire = g.retr_wire(m[2])
                sess.conn.send(b"+OK\r\n" + wire[:20])
                return "close"
            return MiniPop.cmd_retr(self, sess, arg)

    s = pop(Drop, messages=MSGS)
    client.write_config({"acct": s.account(pipeline=1)})
    r = client.fetch(args=("--json",))
    assert r.returncode == ct.EX_TEMPFAIL
    assert json.loads(r.stdout)["fetched"] == 1
    assert list(client.delivered().values()) == [ct.local_form(MSGS[0])]
    assert client.tmp_files() == []
    s.drop = False
    assert client.fetch().returncode == 0
    assert sorted(client.delivered().values()) == sorted(ct.local_form(m) for m in MSGS)


def test_pipelined_err_not_saved_not_deleted(pop, client):
    """C-026: -ERR to RETR 1 inside a pipeline: message 1 is neither saved nor deleted."""
    class Refuse(MiniPop):
        def cmd_retr(self, sess, arg):
            if arg.strip() == "1":
                return sess.conn.line("-ERR [SYS/TEMP] cannot read it now")
            return MiniPop.cmd_retr(self, sess, arg)

    s = pop(Refuse, messages=MSGS)
    client.write_config({"acct": s.account(keep="no")})
    r = client.fetch(args=("--json",))
    assert r.returncode == ct.EX_TEMPFAIL
    st = json.loads(r.stdout)
    assert (st["fetched"], st["deleted"], st["errors"]) == (2, 2, 1)
    dele = [ln for ln in s.log if ln.startswith(b"DELE")]
    assert sorted(dele) == [b"DELE 2", b"DELE 3"]
    assert s.stored() == [MSGS[0]]


def test_pipelining_window(pop, client):
    """With PIPELINING several RETRs go out before the first reply is read.

    The server holds its first RETR reply until four more commands are queued behind it (at most
    two seconds, under the client's five-second timeout): a client that waited for each reply
    would leave the queue empty. Waiting, not sampling the buffer, keeps the test independent of
    how the kernel splits the client's writes."""
    many = [g.header("p%d" % i) + b"x\n" for i in range(60)]

    class Watch(MiniPop):
        max_queued = None

        def cmd_retr(self, sess, arg):
            if self.max_queued is None:
                self.max_queued = sess.conn.wait_lines(4, timeout=2)
            return MiniPop.cmd_retr(self, sess, arg)

    s = pop(Watch, messages=many)
    client.write_config({"acct": s.account(pipeline=16)})
    assert client.fetch().returncode == 0
    assert len(client.delivered()) == 60
    assert s.max_queued >= 4


def test_quit_err_no_refetch(pop, client):
    """C-036: -ERR to QUIT; the journal still prevents a second download."""
    class BadQuit(MiniPop):
        def cmd_quit(self, sess, arg):
            sess.conn.line("-ERR [SYS/TEMP] some deletes failed")
            return "close"

    s = pop(BadQuit, messages=MSGS)
    client.write_config({"acct": s.account(keep="no")})
    r = client.fetch()
    assert r.returncode == ct.EX_TEMPFAIL
    assert "some deletions may not have happened" in r.stderr
    assert len(client.delivered()) == 3
    r = client.fetch(args=("--json",))
    st = json.loads(r.stdout)
    assert (st["new"], st["fetched"]) == (0, 0)
    assert s.commands().count(b"RETR") == 3


def test_in_use(pop, client):
    class InUse(MiniPop):
        def cmd_pass(self, sess, arg):
            sess.conn.line("-ERR [IN-USE] maildrop locked")

    s = pop(InUse, messages=MSGS)
    client.write_config({"acct": s.account(auth="user")})
    r = client.fetch()
    assert r.returncode == ct.EX_TEMPFAIL
    assert "in use" in r.stderr


# ----- TLS -----------------------------------------------------------------------------------

CERTS = {}


@pytest.fixture(autouse=True)
def _certs(certs):
    CERTS.update(certs)


def test_stls_then_capa_again(pop, client):
    """C-011: SASL PLAIN advertised only before STLS is not used after it."""
    class Sneaky(MiniPop):
        def capabilities(self, sess):
            caps = ["UIDL", "TOP", "USER"]
            if not sess.conn.tls:
                caps += ["STLS", "SASL PLAIN"]
            return caps

    s = pop(Sneaky, messages=MSGS[:1], mode="stls", cert=CERTS["good"])
    client.write_config({"acct": s.account(ca_file=CERTS["ca"])})
    r = client.fetch()
    assert r.returncode == 0, r.stderr
    cmds = s.commands()
    assert cmds[:3] == [b"CAPA", b"STLS", b"CAPA"]
    assert b"AUTH" not in cmds and b"USER" in cmds


def test_stls_stripped(pop, client):
    """C-014: STLS missing from CAPA (a man in the middle) makes gannet stop, not fall back."""
    class Stripped(MiniPop):
        def capabilities(self, sess):
            return ["UIDL", "USER"]

    s = pop(Stripped, messages=MSGS[:1], mode="stls", cert=CERTS["good"])
    client.write_config({"acct": s.account(ca_file=CERTS["ca"])})
    r = client.fetch()
    assert r.returncode == ct.EX_PROTOCOL
    assert "does not offer STLS" in r.stderr
    assert s.commands() == [b"CAPA"]


def test_stls_injection(pop, client):
    class Inject(MiniPop):
        def cmd_stls(self, sess, arg):
            sess.conn.send(b"+OK Begin TLS\r\n+OK injected\r\n")
            sess.conn.starttls(self.ctx)

    s = pop(Inject, messages=MSGS[:1], mode="stls", cert=CERTS["good"])
    client.write_config({"acct": s.account(ca_file=CERTS["ca"])})
    r = client.fetch()
    assert r.returncode == ct.EX_PROTOCOL
    assert "injection" in r.stderr
    assert s.commands() == [b"CAPA", b"STLS"]


@pytest.mark.parametrize("which,words", [("other", "not valid for 'localhost'"),
                                         ("expired", "certificate has expired")])
def test_bad_certificate(pop, client, which, words):
    """C-012/C-013: refused, and no user name or password is ever sent."""
    s = pop(messages=MSGS[:1], mode="tls", cert=CERTS[which])
    client.write_config({"acct": s.account(ca_file=CERTS["ca"])})
    r = client.fetch()
    assert r.returncode == ct.EX_PROTOCOL
    assert words in r.stderr
    assert s.log == []
    s2 = pop(messages=MSGS[:1], mode="stls", cert=CERTS[which])
    client.write_config({"acct": s2.account(ca_file=CERTS["ca"])})
    r = client.fetch()
    assert r.returncode == ct.EX_PROTOCOL
    assert s2.commands() == [b"CAPA", b"STLS"]
    # probe reports the problem instead of refusing
    r = client.run("probe", "--ca-file", CERTS["ca"], "localhost:%d" % s.port)
    assert r.returncode == 0
    assert "verify       " in r.stdout and "verify       ok" not in r.stdout


def test_old_tls_refused(pop, client):
    """C-015: a server that speaks only TLS 1.1 is refused."""
    import ssl
    try:
        ctx = server_ctx(CERTS["good"], maximum=ssl.TLSVersion.TLSv1_1,
                         minimum=ssl.TLSVersion.TLSv1)
    except (ValueError, ssl.SSLError):
        pytest.skip("this OpenSSL cannot serve TLS 1.1")
    s = pop(messages=MSGS[:1], mode="tls", ctx=ctx)
    client.write_config({"acct": s.account(ca_file=CERTS["ca"])})
    r = client.fetch()
    assert r.returncode == ct.EX_PROTOCOL
    assert s.log == []


def test_handshake_stall(pop, client):
    """A server that accepts the connection but never answers the ClientHello."""
    class Silent(MiniPop):
        def _run(self, s):
            self.halt.wait(6)
            s.close()

    s = pop(Silent, mode="tls", cert=CERTS["good"])
    client.write_config({"acct": s.account(ca_file=CERTS["ca"], timeout=2)})
    rc, out, err = run_bounded(client, "fetch", seconds=8)
    assert rc == ct.EX_TEMPFAIL
    assert "handshake" in err

