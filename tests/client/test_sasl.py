"""gannet's SASL logins (issue 6 item 5): every mechanism against the real gannetd (SCRAM with
and without channel binding on TLS 1.3 and TLS 1.2, PLAIN, LOGIN, OAUTHBEARER, XOAUTH2), and
against a scripted server that cheats: bad base64, a wrong SCRAM server signature, success
without the server's proof, and PLAIN offered without TLS."""

import base64
import hashlib
import hmac
import os

import pytest

import clienttest as ct
from clienttest import g
from conftest import account_for
from hostile import MiniPop, server_ctx

MSG = g.header("sasl") + b"logged in with SASL\n"

# OpenSSL reads this for the client: TLS 1.2 at most, so gannetd binds with tls-unique.
TLS12_CONF = """openssl_conf = default_conf
[default_conf]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
MaxProtocol = TLSv1.2
"""


def scram_server(gannetd, **settings):
    srv = gannetd(users=(), **settings)
    srv.add_user("alice", scram=True)
    srv.maildir("alice").deliver(MSG)
    return srv


def auth_lines(srv):
    # the login process logs the method with the TLS version (the auth process logs it too)
    return [ln for ln in srv.log_text().splitlines() if "event=auth_ok" in ln and " tls=" in ln]


MECHS = ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-1", "PLAIN",
         "LOGIN"]


@pytest.mark.parametrize("mech", MECHS)
def test_each_mechanism_logs_in(gannetd, client, certs, mech):
    srv = scram_server(gannetd)
    client.write_config({"acct": account_for(srv, "alice", certs, auth=mech.lower())})
    r = client.fetch()
    assert r.returncode == 0, r.stderr
    assert list(client.delivered().values()) == [ct.local_form(MSG)]
    lines = auth_lines(srv)
    assert len(lines) == 1, lines
    assert "event=auth_ok user=alice method=%s tls=TLSv1.3" % mech in lines[0]


def test_auto_prefers_scram_plus(gannetd, client, certs):
    srv = scram_server(gannetd)
    client.write_config({"acct": account_for(srv, "alice", certs, tls="starttls")})
    r = client.fetch()
    assert r.returncode == 0, r.stderr
    assert "method=SCRAM-SHA-256-PLUS tls=TLSv1.3" in auth_lines(srv)[0]


def test_user_without_scram_verifier(gannetd, client, certs):
    """Only PLAIN/LOGIN work for a user without SCRAM verifiers: auto still picks SCRAM (the
    server cannot tell us, and gannet does not retry a failed login with another method), so
    such an account sets auth = plain."""
    srv = gannetd(users=())
    srv.add_user("bob")
    srv.maildir("bob").deliver(MSG)
    client.write_config({"acct": account_for(srv, "bob", certs)})
    r = client.fetch()
    assert r.returncode == ct.EX_NOPERM, r.stderr
    client.write_config({"acct": account_for(srv, "bob", certs, auth="plain")})
    r = client.fetch()
    assert r.returncode == 0, r.stderr
    assert "user=bob method=PLAIN tls=TLSv1.3" in auth_lines(srv)[0]


@pytest.mark.parametrize("mech", ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS"])
def test_tls12_tls_unique(gannetd, client, certs, tmp_path, mech):
    srv = scram_server(gannetd)
    conf = tmp_path / "openssl-tls12.cnf"
    conf.write_text(TLS12_CONF)
    client.write_config({"acct": account_for(srv, "alice", certs, auth=mech.lower())})
    r = client.fetch(env={"OPENSSL_CONF": str(conf)})
    assert r.returncode == 0, r.stderr
    assert "method=%s tls=TLSv1.2" % mech in auth_lines(srv)[0]
    assert list(client.delivered().values()) == [ct.local_form(MSG)]


@pytest.mark.parametrize("mech", ["scram-sha-256-plus", "scram-sha-256", "plain"])
def test_wrong_password(gannetd, client, certs, mech):
    srv = scram_server(gannetd)
    client.write_config({"acct": account_for(srv, "alice", certs, auth=mech,
                                             password="not-the-password")})
    r = client.fetch()
    assert r.returncode == ct.EX_NOPERM, r.stderr
    assert "login" in r.stderr
    assert client.delivered() == {}
    assert auth_lines(srv) == []


@pytest.fixture(scope="module")
def issuer(tmp_path_factory):
    from test_oauth import Issuer
    return Issuer(tmp_path_factory.mktemp("issuer"))


@pytest.mark.parametrize("mech", ["OAUTHBEARER", "XOAUTH2"])
def test_oauth_token_from_password_command(gannetd, client, certs, issuer, tmp_path, mech):
    from test_oauth import AUD, ISS
    srv = gannetd(oauth_jwks=issuer.jwks, oauth_issuer=ISS, oauth_audience=AUD)
    srv.maildir("alice").deliver(MSG)
    tok = tmp_path / "token"
    tok.write_text(issuer.token() + "\n")
    acct = account_for(srv, "alice", certs, auth=mech.lower(), password=None,
                       password_command="cat %s" % tok)
    client.write_config({"acct": acct})
    r = client.fetch()
    assert r.returncode == 0, r.stderr
    assert "event=auth_ok user=alice method=%s tls=TLSv1.3" % mech in auth_lines(srv)[0]
    # an expired token: the server's error challenge is answered, then -ERR
    tok.write_text(issuer.token(exp=1) + "\n")
    srv.maildir("alice").deliver(MSG + b"again\n")
    r = client.fetch()
    assert r.returncode == ct.EX_NOPERM, r.stderr
    assert "refused the %s token" % mech in r.stderr
    assert len(client.delivered()) == 1


# ---------------------------------------------------------------------------------------------
# A SCRAM-SHA-256 server in Python (RFC 5802, RFC 7677) that can cheat.

def _hmac(k, m):
    return hmac.new(k, m, hashlib.sha256).digest()


class ScramPop(MiniPop):
    sasl = ["SCRAM-SHA-256"]
    cheat = None  # None, "bad-b64", "bad-v", "skip-final", "bad-b64-final"

    def cmd_auth(self, sess, arg):
        mech, _, ir = arg.partition(" ")
        if mech.upper() != "SCRAM-SHA-256":
            return sess.conn.line("-ERR unsupported")
        if self.cheat == "bad-b64":
            self.sasl_step(sess, "cj1m!!b28=")
            return sess.conn.line("-ERR cancelled")
        first = base64.b64decode(ir if ir else self.sasl_step(sess, ""), validate=True)
        gs2, _, bare = first.partition(b",,")[0] + b",", None, first.split(b",", 2)[2]
        attrs = dict(kv.split(b"=", 1) for kv in bare.split(b","))
        salt, it = b"salty-salt", 4096
        nonce = attrs[b"r"] + b"srvnonce"
        sfirst = b"r=" + nonce + b",s=" + base64.b64encode(salt) + b",i=%d" % it
        resp = self.sasl_step(sess, base64.b64encode(sfirst).decode())
        if resp == b"*":
            return sess.conn.line("-ERR cancelled")
        final = base64.b64decode(resp, validate=True)
        without_proof = final.rsplit(b",p=", 1)[0]
        auth_msg = bare + b"," + sfirst + b"," + without_proof
        salted = hashlib.pbkdf2_hmac("sha256", self.password.encode(), salt, it)
        server_key = _hmac(salted, b"Server Key")
        sig = _hmac(server_key, auth_msg)
        if self.cheat == "bad-v":
            sig = bytes(32)
        if self.cheat == "skip-final":
            return self.login_ok(sess, self.user)
        challenge = base64.b64encode(b"v=" + base64.b64encode(sig)).decode()
        if self.cheat == "bad-b64-final":
            challenge = challenge[:-1] + "!"
        last = self.sasl_step(sess, challenge)
        if last == b"":
            return self.login_ok(sess, self.user)
        sess.conn.line("-ERR cancelled")


CERTS = {}


@pytest.fixture
def pop(certs):
    CERTS.update(certs)
    servers = []

    def make(cls=MiniPop, **kw):
        s = cls(**kw)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


def scram_pop(pop, certs, cheat):
    cls = type("Cheat", (ScramPop,), {"cheat": cheat})
    return pop(cls, messages=[MSG], mode="tls", cert=certs["good"])


def test_python_scram_server_accepts_gannet(pop, client, certs):
    """The scripted SCRAM server is honest here: gannet logs in and fetches."""
    s = scram_pop(pop, certs, None)
    client.write_config({"acct": s.account(ca_file=certs["ca"])})
    r = client.fetch()
    assert r.returncode == 0, r.stderr
    assert s.log[-1] == b"QUIT" and b"RETR" in s.commands()
    assert s.log[1].startswith(b"AUTH SCRAM-SHA-256 ")
    assert s.log[3] == b""  # the empty answer to the server-final message (RFC 5034)


def test_bad_base64_challenge_cancelled(pop, client, certs):
    s = scram_pop(pop, certs, "bad-b64")
    client.write_config({"acct": s.account(ca_file=certs["ca"])})
    r = client.fetch()
    assert r.returncode == ct.EX_PROTOCOL, r.stderr
    assert "malformed SASL challenge" in r.stderr
    assert s.log[-1] == b"*"
    assert b"STAT" not in s.commands()


def test_bad_base64_server_final_cancelled(pop, client, certs):
    s = scram_pop(pop, certs, "bad-b64-final")
    client.write_config({"acct": s.account(ca_file=certs["ca"])})
    r = client.fetch()
    assert r.returncode == ct.EX_PROTOCOL, r.stderr
    assert s.log[-1] == b"*"
    assert b"STAT" not in s.commands()


def test_wrong_server_signature_refused(pop, client, certs):
    s = scram_pop(pop, certs, "bad-v")
    client.write_config({"acct": s.account(ca_file=certs["ca"])})
    r = client.fetch()
    assert r.returncode == ct.EX_PROTOCOL, r.stderr
    assert "failed to prove that it knows your password" in r.stderr
    assert s.log[-1] == b"*"
    assert not {b"STAT", b"UIDL", b"RETR"} & set(s.commands())
    assert client.delivered() == {}


def test_success_without_server_proof_refused(pop, client, certs):
    s = scram_pop(pop, certs, "skip-final")
    client.write_config({"acct": s.account(ca_file=certs["ca"])})
    r = client.fetch()
    assert r.returncode == ct.EX_PROTOCOL, r.stderr
    assert "before it proved" in r.stderr
    assert not {b"STAT", b"UIDL", b"RETR"} & set(s.commands())


def test_only_plain_without_tls_refused(pop, client):
    class PlainOnly(MiniPop):
        sasl = ["PLAIN"]

    s = pop(PlainOnly, messages=[MSG], greeting="+OK no timestamp here")
    client.write_config({"acct": s.account()})
    r = client.fetch()
    assert r.returncode == ct.EX_UNAVAILABLE, r.stderr
    assert "will not send it in clear text" in r.stderr
    assert s.commands() == [b"CAPA"]  # nothing but CAPA, then the client hung up
    # an explicit auth = plain on the tls = none account is the user's informed choice
    client.write_config({"acct": s.account(auth="plain")})
    r = client.fetch()
    assert r.returncode == 0, r.stderr
    assert any(ln.startswith(b"AUTH PLAIN ") for ln in s.log)


def test_scram_without_tls_is_allowed(pop, client):
    """SCRAM never reveals the password, so auto uses it even on a tls = none account."""
    s = pop(ScramPop, messages=[MSG], greeting="+OK no timestamp here")
    client.write_config({"acct": s.account()})
    r = client.fetch()
    assert r.returncode == 0, r.stderr
    assert s.log[1].startswith(b"AUTH SCRAM-SHA-256 ")
