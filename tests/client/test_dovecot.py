"""gannet against the real Dovecot (Debian's dovecot-pop3d, started by the test through
tests/integration/dovecotsrv.py): implicit TLS and STARTTLS with the certificate verified,
USER/PASS, SASL PLAIN and SCRAM-SHA-256 (from a plaintext password and from a doveadm
{SCRAM-SHA-256} hash), exact content exactly once, keep and delete policies, new mail only on
the next poll, and a bounded crash loop (GANNET_CRASH_ROUNDS_DOVECOT, default 30)."""

import json
import os
import re
import shutil

import pytest

import clienttest as ct
import dovecotsrv
from clienttest import account_for, g
from test_crash import crash_loop

DOVECOT_ROUNDS = int(os.environ.get("GANNET_CRASH_ROUNDS_DOVECOT", "30"))
MECHS = "plain login scram-sha-256"


@pytest.fixture
def dovecot(certs):
    """Factory: dovecot(scheme="PLAIN", cert="good") -> a running Dovecot with user alice
    (password stored in SCHEME), implicit TLS on tls_port and STLS on port."""
    dovecotsrv.need_dovecot()
    started = []

    def make(scheme="PLAIN", cert="good", **kw):
        top = dovecotsrv.make_top("gn-dcc-")
        kw.setdefault("auth_mechanisms", MECHS)
        d = dovecotsrv.Dovecot(top, cert=certs[cert], **kw)
        started.append((top, d))
        d.add_user("alice", scheme=scheme)
        return d.start()

    yield make
    left = []
    for top, d in started:
        print("----- dovecot log (%s) -----\n%s" % (d.dir, d.log_text()))
        left += d.stop()
        shutil.rmtree(top, ignore_errors=True)
    assert not left, "dovecot processes left running: %s" % left


def fill(server, msgs):
    md = server.maildir("alice")
    for data in msgs:
        md.deliver(data)


def contents(client, account="acct"):
    return sorted(client.delivered(account).values())


def expected(msgs):
    return sorted(ct.local_form(m) for m in msgs)


def served(dc):
    """What Dovecot sends for each message, as gannet stores it: RETR bodies (one plaintext
    loopback session, ended with QUIT), unstuffed, each CRLF back to LF. Dovecot serves a few
    odd messages differently from gannetd (an empty file, bare CRs, a last line without LF),
    so this, not the stored file, is what each local copy must equal byte for byte."""
    c = g.Pop3Conn.open(dc.port)
    try:
        c.login("alice", dc.password("alice"))
        st = c.cmd("STAT")
        n = int(st.split()[1])
        out = []
        for i in range(1, n + 1):
            body = c.retr(i)
            assert body.endswith(b"\r\n.\r\n") or body == b".\r\n", body[-20:]
            out.append(g.unstuff(body[:-3]).replace(b"\r\n", b"\n"))
    finally:
        c.quit()
    return out


def fetch_json(client, *accounts):
    r = client.fetch(*accounts, args=("--json",))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def logins(dc):
    """Dovecot's successful pop3-login lines: [(method, 'TLS' or '')]."""
    out = []
    for ln in dc.log_text(limit=1 << 20).splitlines():
        m = re.search(r"pop3-login: (?:Info: )?Login: user=<alice>, method=([A-Z0-9-]+), .*", ln)
        if m:
            out.append((m.group(1), "TLS" if re.search(r", (TLS|TLS handshaking)[,:]?", ln)
                        else ""))
    return out


@pytest.mark.parametrize("tls,auth,method", [
    ("tls", "user", "PLAIN"), ("starttls", "user", "PLAIN"),
    ("tls", "plain", "PLAIN"), ("starttls", "plain", "PLAIN"),
])
def test_fetch_exact_once_keep(dovecot, client, certs, tls, auth, method):
    """Every message byte-exact, once; kept on the server (default); the next poll with new mail
    fetches only that. Dovecot's log shows each login was over TLS with the expected method."""
    dc = dovecot()
    labelled = g.varied_messages()
    msgs = [m for _l, m in labelled]
    fill(dc, msgs)
    wire = served(dc)
    assert len(wire) == len(msgs)
    # The reference is not vacuous: Dovecot serves every message as stored but two. An empty
    # file comes as one empty line; and Dovecot 2.3.19 does not dot-stuff the first line of a
    # message, so ".starts with a dot" arrives as itself and any RFC 1939 client (gannet,
    # poplib, mpop) takes one dot off. (A first line of a lone "." would end the RETR early:
    # Dovecot's bug, not gannet's, and no MDA writes such a message.)
    differ = {lbl: w for (lbl, m), w in zip(labelled, wire) if w != ct.local_form(m)}
    stored = dict(labelled)
    assert differ == {"first-line-dot": ct.local_form(stored["first-line-dot"])[1:],
                      "zero-byte": b"\n"}
    client.write_config({"acct": account_for(dc, "alice", certs, tls=tls, auth=auth)})
    s = fetch_json(client)
    assert (s["new"], s["fetched"], s["deleted"], s["errors"], s["status"]) == (
        len(msgs), len(msgs), 0, 0, "ok")
    assert contents(client) == sorted(wire)
    assert all(re.fullmatch(r"gannet-[0-9a-f]{40}", n) for n in client.delivered())
    assert client.tmp_files() == []
    assert dc.stat("alice")[0] == len(msgs)
    # Second poll: nothing new, nothing fetched again.
    s = fetch_json(client)
    assert (s["new"], s["fetched"], s["deleted"]) == (0, 0, 0)
    # Third poll after two deliveries: exactly those two.
    more = [g.header("new-1") + b"first new\n", g.header("new-2") + b"second new\n.\n..\n"]
    fill(dc, more)
    s = fetch_json(client)
    assert (s["new"], s["fetched"], s["deleted"]) == (2, 2, 0)
    assert s["bytes"] == sum(len(g.to_wire(m)) for m in more)
    assert contents(client) == sorted(wire + [ct.local_form(m) for m in more])
    assert dc.stat("alice")[0] == len(msgs) + 2
    assert [x for x in logins(dc) if x[1]] == [(method, "TLS")] * 3


@pytest.mark.parametrize("scheme", ["PLAIN", "SCRAM-SHA-256"])
@pytest.mark.parametrize("tls", ["tls", "starttls"])
def test_scram_sha_256(dovecot, client, certs, scheme, tls):
    """SASL SCRAM-SHA-256 (no -PLUS: Dovecot 2.3 has no channel binding) with the password
    stored as plaintext and as a `doveadm pw -s SCRAM-SHA-256` hash."""
    dc = dovecot(scheme=scheme)
    with open(dc.users_file) as f:
        assert f.read().split(":")[1].startswith("{%s}" % scheme)
    caps = dc.capabilities()
    assert "SCRAM-SHA-256" in caps["SASL"] and "SCRAM-SHA-256-PLUS" not in caps["SASL"]
    msgs = [g.header("s%d" % i) + b"scram %d\n" % i for i in range(3)]
    fill(dc, msgs)
    client.write_config({"acct": account_for(dc, "alice", certs, tls=tls, auth="scram-sha-256")})
    s = fetch_json(client)
    assert (s["fetched"], s["errors"]) == (3, 0)
    assert contents(client) == expected(msgs)
    assert logins(dc) == [("SCRAM-SHA-256", "TLS")]


def test_auto_picks_scram(dovecot, client, certs):
    """auth = auto (the default) takes SCRAM-SHA-256 from Dovecot's SASL list, not PLAIN."""
    dc = dovecot()
    fill(dc, [g.header("a") + b"auto\n"])
    client.write_config({"acct": account_for(dc, "alice", certs)})
    assert fetch_json(client)["fetched"] == 1
    assert logins(dc) == [("SCRAM-SHA-256", "TLS")]


def test_scram_wrong_password(dovecot, client, certs):
    dc = dovecot(scheme="SCRAM-SHA-256")
    fill(dc, [g.header("a") + b"x\n"])
    acct = account_for(dc, "alice", certs, auth="scram-sha-256")
    acct["password"] = "not-" + acct["password"]
    client.write_config({"acct": acct})
    r = client.fetch()
    assert r.returncode == ct.EX_NOPERM, (r.returncode, r.stderr)
    assert client.delivered() == {}
    assert logins(dc) == []


@pytest.mark.parametrize("tls", ["tls", "starttls"])
def test_certificate_for_another_host_refused(dovecot, client, certs, tls):
    """The certificate is verified with the host name: Dovecot's 'other.example' certificate
    (signed by the trusted CA) is refused before any password is sent."""
    dc = dovecot(cert="other")
    fill(dc, [g.header("a") + b"x\n"])
    client.write_config({"acct": account_for(dc, "alice", certs, tls=tls)})
    r = client.fetch()
    assert r.returncode != 0
    assert re.search(r"certificate|verif", r.stderr, re.I), r.stderr
    assert client.delivered() == {}
    assert logins(dc) == []


def test_delete_policy_and_new_only(dovecot, client, certs):
    """keep = no: each message is deleted at Dovecot once it is stored locally; the next poll
    fetches only what arrived since, and deletes that too."""
    dc = dovecot()
    first = [g.header("d%d" % i) + b"delete me %d\n" % i for i in range(5)]
    fill(dc, first)
    client.write_config({"acct": account_for(dc, "alice", certs, keep="no")})
    s = fetch_json(client)
    assert (s["new"], s["fetched"], s["deleted"]) == (5, 5, 5)
    assert dc.stat("alice") == (0, 0)
    assert contents(client) == expected(first)
    second = [g.header("d9") + b"after the first poll\n"]
    fill(dc, second)
    s = fetch_json(client)
    assert (s["new"], s["fetched"], s["deleted"]) == (1, 1, 1)
    assert dc.stat("alice") == (0, 0)
    assert contents(client) == expected(first + second)
    s = fetch_json(client)
    assert (s["new"], s["fetched"], s["deleted"]) == (0, 0, 0)


def test_keep_then_delete(dovecot, client, certs):
    """Messages kept on one poll are deleted, not fetched again, when the account switches to
    keep = no: the journal knows they are stored."""
    dc = dovecot()
    msgs = [g.header("k%d" % i) + b"kept %d\n" % i for i in range(4)]
    fill(dc, msgs)
    client.write_config({"acct": account_for(dc, "alice", certs, keep="yes")})
    assert fetch_json(client)["fetched"] == 4
    assert dc.stat("alice")[0] == 4
    client.write_config({"acct": account_for(dc, "alice", certs, keep="no")})
    s = fetch_json(client)
    assert (s["new"], s["fetched"], s["deleted"]) == (0, 0, 4)
    assert dc.stat("alice") == (0, 0)
    assert contents(client) == expected(msgs)


@pytest.mark.slow
def test_crash_loop_dovecot(dovecot, client, certs, tmp_path):
    """gannet killed at random moments of fetches from Dovecot (keep switching between yes, no
    and 3d): afterwards every message is in the Maildir exactly once."""
    crash_loop(dovecot(), client, certs, tmp_path, "maildir", DOVECOT_ROUNDS,
               label="maildir, Dovecot")


def test_kept_mailbox_journal_stays_small(dovecot, client, certs):
    """The journal of a kept mailbox holds one "S" record per message after the first poll
    (the "P" records of the deliveries are compacted away), and a later poll appends only the
    records of its new messages: a poll of a large kept mailbox loads one record per message."""
    dc = dovecot()
    n = 200
    fill(dc, [g.header("j%d" % i) + b"journal %d\n" % i for i in range(n)])
    client.write_config({"acct": account_for(dc, "alice", certs)})
    assert fetch_json(client)["fetched"] == n
    jpath = os.path.join(client.state, "acct.journal")
    lines = open(jpath).read().splitlines()
    assert lines[0] == "gannet-journal 1"
    assert len(lines) == 1 + n and all(ln.startswith("S ") for ln in lines[1:])
    fill(dc, [g.header("j-new%d" % i) + b"new %d\n" % i for i in range(10)])
    assert fetch_json(client)["fetched"] == 10
    lines = open(jpath).read().splitlines()
    assert len(lines) == 1 + n + 2 * 10
    # each delivery's "P", then the "S" records once the batch is durable
    assert [ln[0] for ln in lines[1 + n:]] == ["P"] * 10 + ["S"] * 10
    assert len(client.delivered()) == n + 10
