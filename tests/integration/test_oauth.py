"""OAUTHBEARER (RFC 7628) and XOAUTH2 against a JWKS issuer: S-119..S-121.

The issuer is this test: an RSA key made with `openssl genpkey`, its JWKS written by hand, and
JWTs signed with `openssl dgst -sha256 -sign`. mpop (--auth=oauthbearer / xoauth2) is the real
client; Python sends the bad tokens."""

import base64
import json
import subprocess
import time

import pytest

import gannettest as g

ISS = "https://id.example.test"
AUD = "pop3.example.test"
FAILED = b"-ERR [AUTH] Authentication failed\r\n"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Issuer:
    def __init__(self, d):
        self.key = str(d / "issuer-key.pem")
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                        "rsa_keygen_bits:2048", "-out", self.key], check=True,
                       capture_output=True, timeout=60)
        mod = subprocess.run(["openssl", "rsa", "-in", self.key, "-noout", "-modulus"],
                             check=True, capture_output=True, timeout=60).stdout.decode()
        n = bytes.fromhex(mod.strip().split("=", 1)[1])
        self.jwks = str(d / "jwks.json")
        with open(self.jwks, "w") as f:
            json.dump({"keys": [{"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256",
                                 "n": b64url(n), "e": "AQAB"}]}, f)

    def token(self, header=None, **claims):
        h = {"alg": "RS256", "typ": "JWT", "kid": "k1"}
        h.update(header or {})
        body = {"iss": ISS, "aud": AUD, "exp": int(time.time()) + 600,
                "iat": int(time.time()), "email": "alice"}
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        signing = b64url(json.dumps(h).encode()) + "." + b64url(json.dumps(body).encode())
        if h["alg"] == "none":
            return signing + "."
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.key],
                             input=signing.encode(), check=True, capture_output=True,
                             timeout=60).stdout
        return signing + "." + b64url(sig)


@pytest.fixture(scope="module")
def issuer(tmp_path_factory):
    return Issuer(tmp_path_factory.mktemp("issuer"))


@pytest.fixture
def srv(gannet, issuer):
    return gannet(users=("alice", "bob"), oauth_jwks=issuer.jwks, oauth_issuer=ISS,
                  oauth_audience=AUD)


def bearer(user, token):
    return b"n,a=" + user.encode() + b",\x01host=localhost\x01port=995\x01auth=Bearer " + \
        token.encode() + b"\x01\x01"


def xoauth2(user, token):
    return b"user=" + user.encode() + b"\x01auth=Bearer " + token.encode() + b"\x01\x01"


def b64(data):
    return base64.b64encode(data).decode()


def test_s119_not_offered_without_tls(srv):
    c = srv.connect()  # loopback is trusted, but bearer tokens still need TLS
    caps = [x for x in c.capa() if x.startswith("SASL ")]
    assert "OAUTHBEARER" not in caps[0] and "XOAUTH2" not in caps[0]
    assert c.cmd("AUTH OAUTHBEARER") == b"-ERR OAUTHBEARER needs TLS\r\n"
    t = srv.connect(tls=True)
    caps = [x for x in t.capa() if x.startswith("SASL ")][0].split()
    assert "OAUTHBEARER" in caps and "XOAUTH2" in caps


def test_oauthbearer_and_xoauth2_good_tokens(srv, issuer):
    c = srv.connect(tls=True)
    assert c.cmd("AUTH OAUTHBEARER " + b64(bearer("alice", issuer.token()))).startswith(b"+OK")
    assert c.quit().startswith(b"+OK")
    # XOAUTH2, one line
    c = srv.connect(tls=True)
    assert c.cmd("AUTH XOAUTH2 " + b64(xoauth2("alice", issuer.token()))).startswith(b"+OK")
    assert c.quit().startswith(b"+OK")
    # XOAUTH2, two lines: empty challenge first (S-094); a 4 kB continuation is fine (S-099)
    c = srv.connect(tls=True)
    assert c.cmd("AUTH XOAUTH2") == b"+ \r\n"
    tok = issuer.token(pad="x" * 2500)
    assert len(b64(xoauth2("alice", tok))) > 4000
    assert c.cmd(b64(xoauth2("alice", tok))).startswith(b"+OK")
    assert c.quit().startswith(b"+OK")
    # OAUTHBEARER without authzid takes the user from the token; unknown pairs are ignored
    c = srv.connect(tls=True)
    msg = b"n,,\x01foo=bar\x01auth=Bearer " + issuer.token().encode() + b"\x01\x01"
    assert c.cmd("AUTH OAUTHBEARER " + b64(msg)).startswith(b"+OK")  # S-120
    log = srv.log_text()
    assert log.count("event=auth_ok user=alice method=OAUTHBEARER tls=TLSv1.3") == 2
    assert log.count("event=auth_ok user=alice method=XOAUTH2 tls=TLSv1.3") == 2


def refused(c, mech, msg, reason, srv):
    """S-121: the error JSON comes as a challenge, the client's dummy reply ends in -ERR."""
    r = c.cmd("AUTH %s %s" % (mech, b64(msg)))
    assert r.startswith(b"+ "), r
    err = json.loads(base64.b64decode(r[2:-2], validate=True))
    assert err == {"status": "invalid_token", "schemes": "bearer", "scope": "pop3",
                   "openid-configuration": ISS + "/.well-known/openid-configuration"}
    assert c.cmd("AQ==") == FAILED
    assert 'reason="%s"' % reason in srv.log_text()


def test_s121_bad_tokens_refused(srv, issuer):
    c = srv.connect(tls=True)
    good = issuer.token()
    refused(c, "OAUTHBEARER", bearer("alice", issuer.token(header={"alg": "none"})),
            "alg_not_allowed", srv)
    refused(c, "OAUTHBEARER", bearer("alice", good[:-2] + ("AA" if good[-2:] != "AA" else "BB")),
            "bad_signature", srv)
    refused(c, "OAUTHBEARER", bearer("alice", issuer.token(exp=int(time.time()) - 3600)),
            "expired", srv)
    refused(c, "XOAUTH2", xoauth2("alice", issuer.token(aud="another-app")), "wrong_audience",
            srv)
    refused(c, "XOAUTH2", xoauth2("alice", issuer.token(iss="https://evil.test")),
            "wrong_issuer", srv)
    refused(c, "OAUTHBEARER", bearer("bob", good), "user_differs_from_token", srv)
    refused(c, "OAUTHBEARER", bearer("carol", issuer.token(email="carol")), "unknown_user", srv)
    # the session goes on: a good token still logs in
    assert c.cmd("AUTH OAUTHBEARER " + b64(bearer("alice", good))).startswith(b"+OK")


def test_malformed_messages(srv, issuer):
    c = srv.connect(tls=True)
    for msg in (b"p=tls-unique,a=alice,\x01auth=Bearer x\x01\x01",  # channel binding
                b"n,a=alice,\x01auth=Bearer " + issuer.token().encode() + b"\x01",
                b"n,a=alice,\x01\x01", b"user=alice\x00\x01auth=Bearer x\x01\x01"):
        assert c.cmd("AUTH OAUTHBEARER " + b64(msg)) == FAILED, msg
    assert c.cmd("AUTH OAUTHBEARER " + b64(bearer("alice", issuer.token()))).startswith(b"+OK")


@pytest.mark.parametrize("auth", ["oauthbearer", "xoauth2"])
def test_mpop_bearer(srv, issuer, tmp_path, auth):
    srv.maildir("alice").deliver(g.header("oauth") + b"body\n")
    out_dir = g.Maildir(tmp_path / "out")
    rc = tmp_path / "mpoprc"
    tokfile = tmp_path / "token"
    tokfile.write_text(issuer.token())  # mpop's config lines stop at 500 characters
    rc.write_text("account default\nhost localhost\nport %d\nuser alice\n"
                  "passwordeval cat %s\n"
                  "auth %s\ntls on\ntls_starttls off\ntls_trust_file %s\nkeep on\n"
                  "delivery maildir %s\nuidls_file %s\n"
                  % (srv.tls_port, tokfile, auth, srv.cert[0], out_dir.root,
                     tmp_path / "uidls"))
    rc.chmod(0o600)
    p = subprocess.run(["mpop", "-C", str(rc), "-q"], capture_output=True, timeout=g.t(60))
    assert p.returncode == 0, p
    assert len(out_dir.contents()) == 1
    assert "event=auth_ok user=alice method=%s" % auth.upper() in srv.log_text()


def test_broken_jwks_disables_bearer_only(gannet, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    s = gannet(oauth_jwks=str(bad))
    deadline = time.monotonic() + g.t(10)
    while "event=oauth_disabled" not in s.log_text():  # the auth process starts after listening
        assert time.monotonic() < deadline, s.log_text()
        time.sleep(0.05)
    c = s.connect(tls=True)
    assert c.cmd("AUTH OAUTHBEARER " + b64(bearer("alice", "x.y.z"))) == \
        b"-ERR [SYS/TEMP] Authentication temporarily unavailable\r\n"
    c.login("alice", s.password("alice"))
