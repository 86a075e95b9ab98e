"""AUTH / SASL (RFC 5034, 4616, 5802, 7677): S-063, S-090..S-105, S-107..S-118, S-035.

Real clients: the GNU SASL command line client (`gsasl`, its SCRAM-SHA-1/256 and -PLUS code driven
over its stdin/stdout protocol, the channel binding taken from this test's TLS socket), mpop
(--auth=scram-sha-256) and curl (AUTH=PLAIN, AUTH=LOGIN). A small SCRAM client written here
produces the protocol violations no real client would send."""

import base64
import hashlib
import hmac
import os
import ssl
import subprocess

import pytest

import gannettest as g

PW = "Correct-Horse-7"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(line: bytes) -> bytes:
    assert line.startswith(b"+ ") and line.endswith(b"\r\n"), line
    return base64.b64decode(line[2:-2], validate=True)


@pytest.fixture
def srv(gannet):
    s = gannet(users=(), start=False)
    s.add_user("alice", password=PW, scram=True)
    s.add_user("bob", password="Bob-pass-99")  # imported without SCRAM verifiers
    s.start()
    return s


def sasl_list(caps):
    for c in caps:
        if c.startswith("SASL "):
            return c.split()[1:]
    return []


def stls(c, srv, **kw):
    assert c.cmd("STLS").startswith(b"+OK")
    c.starttls(srv.tls_context(**kw))
    return c


# ---------------------------------------------------------------------------------------------
# A SCRAM client (RFC 5802) that can be told to break the protocol


class Scram:
    def __init__(self, user, password, hashname="sha256", cbind=b"n,,", cb_data=b""):
        self.user, self.password, self.h = user, password, hashname
        self.gs2 = cbind
        self.cb_data = cb_data
        self.cnonce = base64.b64encode(os.urandom(18)).decode()

    def first(self, bare_extra=""):
        self.bare = "n=%s,r=%s%s" % (self.user, self.cnonce, bare_extra)
        return self.gs2 + self.bare.encode()

    def final(self, server_first: bytes, tamper_nonce=False, tamper_c=False, password=None):
        attrs = dict(kv.split("=", 1) for kv in server_first.decode().split(","))
        self.server_first = server_first.decode()
        nonce, salt, it = attrs["r"], base64.b64decode(attrs["s"]), int(attrs["i"])
        assert nonce.startswith(self.cnonce)
        self.iterations = it
        c = base64.b64encode(self.gs2 + self.cb_data)
        if tamper_c:
            c = base64.b64encode(self.gs2 + self.cb_data + b"x")
        if tamper_nonce:
            nonce = nonce[:-1] + ("A" if nonce[-1] != "A" else "B")
        without_proof = "c=%s,r=%s" % (c.decode(), nonce)
        salted = hashlib.pbkdf2_hmac(self.h, (password or self.password).encode(), salt, it)
        ck = hmac.new(salted, b"Client Key", self.h).digest()
        stored = hashlib.new(self.h, ck).digest()
        self.auth_msg = ",".join([self.bare, self.server_first, without_proof]).encode()
        sig = hmac.new(stored, self.auth_msg, self.h).digest()
        proof = bytes(a ^ b for a, b in zip(ck, sig))
        sk = hmac.new(salted, b"Server Key", self.h).digest()
        self.server_sig = hmac.new(sk, self.auth_msg, self.h).digest()
        return (without_proof + ",p=" + b64(proof)).encode()


def scram_login(c, mech="SCRAM-SHA-256", user="alice", password=PW, **kw):
    """Run SCRAM on C; returns the final status line. KW go to Scram / final()."""
    final_kw = {k: kw.pop(k) for k in ("tamper_nonce", "tamper_c") if k in kw}
    s = Scram(user, password, "sha1" if "SHA-1" in mech else "sha256", **kw)
    r = c.cmd("AUTH %s %s" % (mech, b64(s.first())))
    if not r.startswith(b"+ "):
        return r
    r = c.cmd(b64(s.final(unb64(r), **final_kw)))
    if not r.startswith(b"+ "):
        return r
    assert unb64(r) == b"v=" + base64.b64encode(s.server_sig)  # server proved the key
    return c.cmd("")


# ---------------------------------------------------------------------------------------------
# CAPA and the mechanism list


def test_s113_s103_capa_without_tls_then_after_stls(gannet):
    """S-103, S-113, S-083: untrusted client on 110: SCRAM only; after STLS PLAIN/LOGIN and -PLUS."""
    s = gannet(trusted_networks="", auth_failure_delay="0")
    c = s.connect()
    assert sasl_list(c.capa()) == ["SCRAM-SHA-256", "SCRAM-SHA-1"]
    assert c.cmd("AUTH PLAIN " + b64(b"\0alice\0x")) == (
        b"-ERR [AUTH] Plaintext authentication disallowed on non-secure connection; "
        b"use STLS or port 995\r\n")
    stls(c, s)
    assert sasl_list(c.capa()) == ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS",
                                   "SCRAM-SHA-1", "PLAIN", "LOGIN"]


def test_bare_auth_lists_mechanisms(srv):
    c = srv.connect()
    status, body = c.cmd_multi("AUTH")
    assert status == b"+OK Authentication mechanisms follow\r\n"
    assert body == b"SCRAM-SHA-256\r\nSCRAM-SHA-1\r\nPLAIN\r\nLOGIN\r\n.\r\n"


def test_auth_mechanisms_setting_limits_the_list(gannet):
    s = gannet(auth_mechanisms="SCRAM-SHA-256 PLAIN")
    c = s.connect()
    assert sasl_list(c.capa()) == ["SCRAM-SHA-256", "PLAIN"]
    assert c.cmd("AUTH LOGIN") == b"-ERR Unsupported authentication mechanism\r\n"


def test_s008_sasl_capa_line_within_512(srv):
    c = stls(srv.connect(), srv)
    status, body = c.cmd_multi("CAPA")
    for line in body.split(b"\r\n"):
        assert len(line) + 2 <= 512


# ---------------------------------------------------------------------------------------------
# PLAIN and the AUTH framing


def test_s102_s092_plain_with_initial_response_any_case(srv):
    c = srv.connect()
    r = c.cmd("AUTH plain " + b64(b"\0alice\0" + PW.encode()))
    assert r.startswith(b"+OK"), r
    assert c.cmd("STAT") == b"+OK 0 0\r\n"


def test_s093_s094_empty_challenge_exact_bytes(srv):
    c = srv.connect()
    c.send(b"AUTH PLAIN\r\n")
    assert c.readline() == b"+ \r\n"
    assert c.cmd(b64(b"alice\0alice\0" + PW.encode())).startswith(b"+OK")


def test_s095_equals_is_an_empty_response(srv):
    c = srv.connect()
    assert c.cmd("AUTH PLAIN =") == b"-ERR [AUTH] Authentication failed\r\n"
    assert c.cmd("AUTH PLAIN " + b64(b"\0alice\0" + PW.encode())).startswith(b"+OK")


def test_s091_unknown_mechanism(srv):
    c = srv.connect()
    assert c.cmd("AUTH FOO-BAR") == b"-ERR Unsupported authentication mechanism\r\n"
    assert c.cmd("AUTH CRAM-MD5 Zm9v") == b"-ERR Unsupported authentication mechanism\r\n"


@pytest.mark.parametrize("bad", ["Zm9v!", "=AAA", "AAA=BBB", "Zm9v YmFy", "Zg", "Zg=", "===="])
def test_s098_strict_base64_initial_and_continuation(srv, bad):
    c = srv.connect()
    if " " in bad:
        assert c.cmd("AUTH PLAIN " + bad).startswith(b"-ERR Usage")
    else:
        assert c.cmd("AUTH PLAIN " + bad) == b"-ERR Invalid base64 in the initial response\r\n"
    assert c.cmd("AUTH PLAIN") == b"+ \r\n"
    assert c.cmd(bad) == b"-ERR Invalid base64 in the authentication response\r\n"
    # the session goes on and a good exchange still works
    assert c.cmd("AUTH PLAIN " + b64(b"\0alice\0" + PW.encode())).startswith(b"+OK")


def test_s096_star_cancels_then_auth_works(srv):
    c = srv.connect()
    s = Scram("alice", PW)
    r = c.cmd("AUTH SCRAM-SHA-256 " + b64(s.first()))
    assert r.startswith(b"+ ")
    assert c.cmd("*") == b"-ERR Authentication cancelled\r\n"
    assert c.cmd("AUTH PLAIN " + b64(b"\0alice\0" + PW.encode())).startswith(b"+OK")


def test_s104_plain_nul_count_and_long_fields(gannet):
    s = gannet(users=(), start=False)
    long_pw = "p" * 255
    s.add_user("carol", password=long_pw)
    s.start()
    c = s.connect()
    assert c.cmd("AUTH PLAIN " + b64(b"\0u\0p\0x")) == b"-ERR [AUTH] Authentication failed\r\n"
    assert c.cmd("AUTH PLAIN " + b64(b"u\0p")) == b"-ERR [AUTH] Authentication failed\r\n"
    # 255-octet password: too long for the initial response line, so it goes as continuation
    c.send(b"AUTH PLAIN\r\n")
    assert c.readline() == b"+ \r\n"
    assert c.cmd(b64(b"\0carol\0" + long_pw.encode())).startswith(b"+OK")


def test_s105_authzid_other_user_refused(srv):
    c = srv.connect()
    r = c.cmd("AUTH PLAIN " + b64(b"bob\0alice\0" + PW.encode()))
    assert r == b"-ERR [AUTH] Authentication failed\r\n"
    assert "reason=\"authzid_differs\"" in srv.log_text()


def test_s099_long_continuation_lines(srv):
    """S-099: a 4 kB response is read whole (here it is a wrong password), beyond 16 kB -ERR."""
    c = srv.connect()
    assert c.cmd("AUTH PLAIN") == b"+ \r\n"
    r = c.cmd(b64(b"\0alice\0" + b"x" * 3000))
    assert r == b"-ERR [AUTH] Authentication failed\r\n"
    assert c.cmd("AUTH PLAIN") == b"+ \r\n"
    r = c.cmd("A" * 20000)
    assert r == b"-ERR Authentication response too long or malformed\r\n"
    assert c.cmd("AUTH PLAIN " + b64(b"\0alice\0" + PW.encode())).startswith(b"+OK")


def test_ten_kb_password_and_bad_names(srv):
    """Bad input from the issue: a 10 KB password, user names with NUL or CR."""
    c = srv.connect()
    assert c.cmd("AUTH PLAIN") == b"+ \r\n"
    assert c.cmd(b64(b"\0alice\0" + b"y" * 10240)) == b"-ERR [AUTH] Authentication failed\r\n"
    for name in (b"ali\rce", b"alice\r\nevent=auth_ok user=root", b"a\x7f"):
        assert c.cmd("AUTH PLAIN " + b64(b"\0" + name + b"\0" + PW.encode())) == \
            b"-ERR [AUTH] Authentication failed\r\n"
    log = srv.log_text()
    assert "event=auth_ok user=root" not in log
    assert "\r" not in log
    assert "reason=\"password_too_long\"" in log


def test_s090_s063_auth_after_login_and_capa_keeps_sasl(srv):
    c = srv.connect()
    assert c.cmd("AUTH PLAIN " + b64(b"\0alice\0" + PW.encode())).startswith(b"+OK")
    assert c.cmd("AUTH PLAIN " + b64(b"\0alice\0" + PW.encode())).startswith(b"-ERR")
    assert "SCRAM-SHA-256" in sasl_list(c.capa())


def test_s035_wrong_password_paths_all_carry_auth_code(srv):
    c = srv.connect()
    assert c.cmd("AUTH PLAIN " + b64(b"\0alice\0nope")) == b"-ERR [AUTH] Authentication failed\r\n"
    assert scram_login(c, password="nope") == b"-ERR [AUTH] Authentication failed\r\n"
    assert c.cmd("AUTH LOGIN") == b"+ VXNlciBOYW1l\r\n"


def test_login_mechanism_two_steps(srv):
    c = srv.connect()
    r = c.cmd("AUTH LOGIN")
    assert r == b"+ VXNlciBOYW1l\r\n"  # "User Name" (GNU SASL's prompt)
    r = c.cmd(b64(b"alice"))
    assert r == b"+ UGFzc3dvcmQ=\r\n"  # "Password"
    assert c.cmd(b64(PW.encode())).startswith(b"+OK")


def test_disconnect_half_way_then_next_login(srv):
    c = srv.connect()
    s = Scram("alice", PW)
    assert c.cmd("AUTH SCRAM-SHA-256 " + b64(s.first())).startswith(b"+ ")
    c.close()
    c = srv.connect()
    assert scram_login(c).startswith(b"+OK")


# ---------------------------------------------------------------------------------------------
# SCRAM


@pytest.mark.parametrize("mech", ["SCRAM-SHA-256", "SCRAM-SHA-1"])
def test_s100_s111_scram_server_final_then_empty_line(srv, mech):
    c = srv.connect()
    s = Scram("alice", PW, "sha1" if mech == "SCRAM-SHA-1" else "sha256")
    r = c.cmd("AUTH %s %s" % (mech, b64(s.first())))
    first = unb64(r)
    assert first.startswith(b"r=" + s.cnonce.encode())
    r = c.cmd(b64(s.final(first)))
    assert s.iterations >= 4096  # S-111
    assert unb64(r) == b"v=" + base64.b64encode(s.server_sig)
    assert c.cmd("") == b"+OK Logged in, 0 messages (0 octets)\r\n"


def test_scram_final_answered_with_star_is_not_a_login(srv):
    c = srv.connect()
    s = Scram("alice", PW)
    r = c.cmd("AUTH SCRAM-SHA-256 " + b64(s.first()))
    r = c.cmd(b64(s.final(unb64(r))))
    assert r.startswith(b"+ ")
    assert c.cmd("*") == b"-ERR Authentication cancelled\r\n"
    assert c.cmd("STAT") == b"-ERR Command not valid before login\r\n"


def test_s107_s108_s109_malformed_client_first(srv):
    c = srv.connect()
    for first in (b"x,,n=alice,r=abc", b"n,,n=a=b,r=abcdef", b"n,,m=x,n=alice,r=abcdef",
                  b"n,,r=abcdef", b"garbage"):
        r = c.cmd("AUTH SCRAM-SHA-256 " + b64(first))
        assert r == b"-ERR [AUTH] Authentication failed\r\n", first
    assert scram_login(c).startswith(b"+OK")


def test_s110_s116_tampered_nonce_or_binding(srv):
    c = srv.connect()
    assert scram_login(c, tamper_nonce=True) == b"-ERR [AUTH] Authentication failed\r\n"
    assert scram_login(c, tamper_c=True) == b"-ERR [AUTH] Authentication failed\r\n"
    assert scram_login(c).startswith(b"+OK")


def test_scram_user_without_verifier_fails_plain_works(srv):
    c = srv.connect()
    assert scram_login(c, user="bob", password="Bob-pass-99") == \
        b"-ERR [AUTH] Authentication failed\r\n"
    assert "reason=\"no_scram_verifier\"" in srv.log_text()
    assert c.cmd("AUTH PLAIN " + b64(b"\0bob\0Bob-pass-99")).startswith(b"+OK")


def test_scram_unknown_user_looks_like_a_real_one(srv):
    """The server-first message for an unknown user has the same shape and a stable salt."""
    salts = []
    for _ in range(2):
        c = srv.connect()
        s = Scram("nobody", "x")
        first = unb64(c.cmd("AUTH SCRAM-SHA-256 " + b64(s.first())))
        attrs = dict(kv.split("=", 1) for kv in first.decode().split(","))
        assert set(attrs) == {"r", "s", "i"} and attrs["i"] == "4096"
        assert len(base64.b64decode(attrs["s"])) == 16
        salts.append(attrs["s"])
        assert c.cmd(b64(s.final(first))) == b"-ERR [AUTH] Authentication failed\r\n"
    assert salts[0] == salts[1]


def test_s114_y_flag_under_tls_is_a_downgrade(srv):
    c = stls(srv.connect(), srv)
    assert scram_login(c, cbind=b"y,,") == b"-ERR [AUTH] Authentication failed\r\n"
    # without TLS, "y" is what a client that could bind says when the server cannot: fine
    c2 = srv.connect()
    assert scram_login(c2, cbind=b"y,,").startswith(b"+OK")


def test_s115_unknown_binding_type(srv):
    c = stls(srv.connect(), srv)
    r = scram_login(c, mech="SCRAM-SHA-256-PLUS", cbind=b"p=tls-foo,,", cb_data=b"x" * 32)
    assert r == b"-ERR [AUTH] Authentication failed\r\n"


def test_s117_tls12_tls_unique_binding(srv):
    """TLS 1.2: tls-unique is the binding; the right data logs in, another session's fails."""
    other = stls(srv.connect(), srv, maximum=ssl.TLSVersion.TLSv1_2)
    wrong = other.sock.get_channel_binding("tls-unique")
    c = stls(srv.connect(), srv, maximum=ssl.TLSVersion.TLSv1_2)
    cb = c.sock.get_channel_binding("tls-unique")
    assert cb and cb != wrong
    assert scram_login(c, mech="SCRAM-SHA-256-PLUS", cbind=b"p=tls-unique,,", cb_data=wrong) \
        == b"-ERR [AUTH] Authentication failed\r\n"
    assert scram_login(c, mech="SCRAM-SHA-256-PLUS", cbind=b"p=tls-exporter,,", cb_data=cb) \
        == b"-ERR [AUTH] Authentication failed\r\n"
    assert scram_login(c, mech="SCRAM-SHA-256-PLUS", cbind=b"p=tls-unique,,",
                       cb_data=cb).startswith(b"+OK")


# ---------------------------------------------------------------------------------------------
# TLS 1.3 with tls-exporter: Python's ssl has no exporter, pyOpenSSL (python3-openssl) does.


class OpenSSLSock:
    """Enough of a socket for Pop3Conn, over pyOpenSSL, exposing the TLS exporter."""

    def __init__(self, port, cafile):
        import socket as _socket

        from OpenSSL import SSL
        ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
        ctx.set_min_proto_version(SSL.TLS1_3_VERSION)
        ctx.load_verify_locations(cafile)
        ctx.set_verify(SSL.VERIFY_PEER, lambda *a: a[-1])
        raw = _socket.create_connection(("127.0.0.1", port), timeout=g.t(10))
        self.conn = SSL.Connection(ctx, raw)
        self.conn.set_tlsext_host_name(b"localhost")
        self.conn.set_connect_state()
        self.raw = raw
        self._retry(self.conn.do_handshake)

    def _retry(self, fn, *args):
        import select

        from OpenSSL import SSL
        while True:
            try:
                return fn(*args)
            except SSL.WantReadError:
                if not select.select([self.raw], [], [], self.raw.gettimeout())[0]:
                    raise TimeoutError("no TLS data")
            except SSL.WantWriteError:
                select.select([], [self.raw], [], self.raw.gettimeout())

    def exporter(self):
        return self.conn.export_keying_material(b"EXPORTER-Channel-Binding", 32)

    def sendall(self, data):
        self._retry(self.conn.sendall, data)

    def recv(self, n):
        from OpenSSL import SSL
        try:
            return self._retry(self.conn.recv, n)
        except SSL.ZeroReturnError:
            return b""

    def settimeout(self, t):
        self.raw.settimeout(t)

    def close(self):
        self.raw.close()


def tls13_conn(srv):
    s = OpenSSLSock(srv.tls_port, srv.cert[0])
    c = g.Pop3Conn(s, server=srv)
    c.greeting = c.readline()
    return c, s


def test_s117_tls13_exporter_binding(srv):
    c, s = tls13_conn(srv)
    other_c, other = tls13_conn(srv)
    assert scram_login(c, mech="SCRAM-SHA-256-PLUS", cbind=b"p=tls-unique,,",
                       cb_data=s.exporter()) == b"-ERR [AUTH] Authentication failed\r\n"
    assert scram_login(c, mech="SCRAM-SHA-256-PLUS", cbind=b"p=tls-exporter,,",
                       cb_data=other.exporter()) == b"-ERR [AUTH] Authentication failed\r\n"
    assert scram_login(c, mech="SCRAM-SHA-1-PLUS", cbind=b"p=tls-exporter,,",
                       cb_data=s.exporter()).startswith(b"+OK")


# ---------------------------------------------------------------------------------------------
# Real clients


class GsaslClient:
    """GNU SASL's client (the `gsasl` program) on its stdin/stdout: it asks for the channel
    bindings first, then prints each client message and reads each server challenge."""

    def __init__(self, mech, user, password, exporter=b"", unique=b""):
        self.p = subprocess.Popen(
            ["gsasl", "--client", "--mechanism", mech, "--authentication-id", user,
             "--password", password, "--no-starttls"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        # It asks for tls-unique only when no tls-exporter binding was given.
        self.p.stdin.write((b64(exporter) if exporter else "").encode() + b"\n")
        if not exporter:
            self.p.stdin.write((b64(unique) if unique else "").encode() + b"\n")
        self.p.stdin.flush()

    def _output(self):
        out = b""
        while b"(press RET if none):\n" not in out:
            chunk = os.read(self.p.stdout.fileno(), 4096)
            if not chunk:
                raise AssertionError("gsasl ended: %r" % out)
            out += chunk
        assert b"Output from client:\n" in out, out
        return out.split(b"Output from client:\n")[1].split(b"\n")[0].decode()

    def first(self):
        return self._output()

    def step(self, challenge_line: bytes):
        self.p.stdin.write(challenge_line[2:].strip() + b"\n")
        self.p.stdin.flush()
        return self._output()

    def close(self):
        self.p.kill()
        self.p.wait(timeout=g.t(10))


def gsasl_login(c, mech, user, password, **cb):
    gc = GsaslClient(mech, user, password, **cb)
    try:
        r = c.cmd("AUTH %s %s" % (mech, gc.first()))
        while r.startswith(b"+ "):
            r = c.cmd(gc.step(r))
        return r
    finally:
        gc.close()


@pytest.mark.parametrize("mech", ["SCRAM-SHA-256", "SCRAM-SHA-1"])
def test_gsasl_client_scram(srv, mech):
    c = srv.connect()
    assert gsasl_login(c, mech, "alice", PW) == b"+OK Logged in, 0 messages (0 octets)\r\n"
    c = srv.connect()
    assert gsasl_login(c, mech, "alice", "wrong") == b"-ERR [AUTH] Authentication failed\r\n"


def test_gsasl_client_scram_plus_tls13_exporter(srv):
    c, s = tls13_conn(srv)
    assert gsasl_login(c, "SCRAM-SHA-256-PLUS", "alice", PW, exporter=s.exporter()) == \
        b"+OK Logged in, 0 messages (0 octets)\r\n"
    assert "method=SCRAM-SHA-256-PLUS" in srv.log_text()


def test_gsasl_client_scram_plus_tls12_unique(srv):
    c = stls(srv.connect(), srv, maximum=ssl.TLSVersion.TLSv1_2)
    cb = c.sock.get_channel_binding("tls-unique")
    assert gsasl_login(c, "SCRAM-SHA-256-PLUS", "alice", PW, unique=cb) == \
        b"+OK Logged in, 0 messages (0 octets)\r\n"


def test_gsasl_client_scram_plus_wrong_session_refused(srv):
    c, s = tls13_conn(srv)
    _, other = tls13_conn(srv)
    assert gsasl_login(c, "SCRAM-SHA-256-PLUS", "alice", PW, exporter=other.exporter()) == \
        b"-ERR [AUTH] Authentication failed\r\n"


def test_mpop_scram_sha_256(srv, tmp_path):
    srv.maildir("alice").deliver(g.header("via mpop") + b"body\n")
    out_dir = g.Maildir(tmp_path / "out")
    rc = tmp_path / "mpoprc"
    rc.write_text("account default\nhost 127.0.0.1\nport %d\nuser alice\npassword %s\n"
                  "auth scram-sha-256\ntls off\nkeep on\ndelivery maildir %s\n"
                  "uidls_file %s\n" % (srv.port, PW, out_dir.root, tmp_path / "uidls"))
    rc.chmod(0o600)
    p = subprocess.run(["mpop", "-C", str(rc), "-q"], capture_output=True, timeout=g.t(60))
    assert p.returncode == 0, p
    assert len(out_dir.contents()) == 1
    assert "method=SCRAM-SHA-256 tls=no" in srv.log_text()


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_curl_auth_plain_and_login(srv, mech):
    srv.maildir("alice").deliver(g.header("curl") + b"hello\n")
    p = subprocess.run(["curl", "-sS", "--max-time", "30", "--cacert", srv.cert[0],
                        "--ssl-reqd", "--login-options", "AUTH=" + mech,
                        "-u", "alice:" + PW, "pop3://localhost:%d/1" % srv.port],
                       capture_output=True, timeout=g.t(60))
    assert p.returncode == 0, p
    assert p.stdout == g.header("curl").replace(b"\n", b"\r\n") + b"hello\r\n"
    assert "user=alice method=%s tls=TLSv1.3" % mech in srv.log_text()
