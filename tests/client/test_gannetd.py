"""gannet against the real gannetd: TLS modes, exact content, once-only, policies, MDA, filter,
--json, check and probe."""

import json
import os
import re
import signal
import stat
import time

import pytest

import clienttest as ct
from clienttest import g
from conftest import account_for


def fill(server, user, messages):
    md = server.maildir(user)
    for _label, data in messages:
        md.deliver(data)


def contents(client, account="acct"):
    return sorted(client.delivered(account).values())


def expected(messages):
    return sorted(ct.local_form(m) for _l, m in messages)


@pytest.mark.parametrize("tls", ["tls", "starttls"])
def test_fetch_exact_and_once(gannetd, client, certs, tls):
    srv = gannetd()
    msgs = g.varied_messages()
    fill(srv, "alice", msgs)
    client.write_config({"acct": account_for(srv, "alice", certs, tls=tls)})
    r = client.fetch()
    assert r.returncode == 0, r.stderr
    assert contents(client) == expected(msgs)
    # Names are deterministic and safe; nothing is left in tmp/.
    assert all(re.fullmatch(r"gannet-[0-9a-f]{40}", n) for n in client.delivered())
    assert client.tmp_files() == []
    # Kept on the server by default, and not fetched again.
    assert srv.stat("alice")[0] == len(msgs)
    r = client.fetch(args=("--json",))
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert (s["new"], s["fetched"], s["errors"], s["status"]) == (0, 0, 0, "ok")
    assert contents(client) == expected(msgs)


def test_utf8_headers_fetched(gannetd, client, certs):
    """C-039/S-130: gannetd refuses a message with raw UTF-8 headers ([UTF8]) to clients that
    have not sent UTF8; gannet sends UTF8 when CAPA offers it, so it gets the message as stored."""
    srv = gannetd()
    msg = ("From: Chloé Bernard <c@example.org>\nSubject: Grüße, 日本語\n\nbody\n").encode()
    fill(srv, "alice", [("utf8-header", msg)])
    client.write_config({"acct": account_for(srv, "alice", certs)})
    r = client.fetch()
    assert r.returncode == 0, r.stderr
    assert contents(client) == expected([("utf8-header", msg)])
    assert "event=refused_utf8" not in srv.log_text()


def test_new_mail_only_and_json(gannetd, client, certs):
    srv = gannetd()
    fill(srv, "alice", [("a", g.header("a") + b"one\n"), ("b", g.header("b") + b"two\n")])
    client.write_config({"acct": account_for(srv, "alice", certs)})
    assert client.fetch().returncode == 0
    srv.maildir("alice").deliver(g.header("c") + b"three\n")
    r = client.fetch(args=("--json",))
    s = json.loads(r.stdout)
    assert (s["account"], s["new"], s["fetched"], s["deleted"]) == ("acct", 1, 1, 0)
    assert s["bytes"] == len(g.to_wire(g.header("c") + b"three\n"))
    assert len(client.delivered()) == 3


def test_delete_after_download(gannetd, client, certs):
    srv = gannetd()
    msgs = [("m%d" % i, g.header("m%d" % i) + b"body %d\n" % i) for i in range(5)]
    fill(srv, "alice", msgs)
    client.write_config({"acct": account_for(srv, "alice", certs, keep="no")})
    r = client.fetch(args=("--json",))
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert (s["fetched"], s["deleted"]) == (5, 5)
    assert srv.stat("alice") == (0, 0)
    assert contents(client) == expected(msgs)


def test_keep_days(gannetd, client, certs):
    srv = gannetd()
    fill(srv, "alice", [("a", g.header("a") + b"x\n")])
    client.write_config({"acct": account_for(srv, "alice", certs, keep="2d")})
    assert client.fetch().returncode == 0
    assert client.fetch().returncode == 0
    assert srv.stat("alice")[0] == 1  # younger than 2 days: kept
    # Age the journal record by three days.
    jpath = os.path.join(client.state, "acct.journal")
    text = open(jpath).read()
    old = int(time.time()) - 3 * 86400
    text = re.sub(r"^S \d+ ", "S %d " % old, text, flags=re.M)
    with open(jpath, "w") as f:
        f.write(text)
    r = client.fetch(args=("--json",))
    assert json.loads(r.stdout)["deleted"] == 1
    assert srv.stat("alice")[0] == 0
    assert len(client.delivered()) == 1


def test_oversize_skip_and_headers(gannetd, client, certs):
    srv = gannetd()
    small = g.header("small") + b"tiny\n"
    big = g.big_message(40000, seed=3, subject="big")
    fill(srv, "alice", [("s", small), ("b", big)])
    client.write_config({"skip": account_for(srv, "alice", certs, max_size="10k"),
                         "hdrs": account_for(srv, "alice", certs, max_size="10k",
                                             oversize="headers")})
    r = client.fetch("skip", args=("--json",))
    s = json.loads(r.stdout)
    assert (s["new"], s["fetched"], s["skipped"]) == (2, 1, 1)
    assert contents(client, "skip") == [ct.local_form(small)]
    r = client.fetch("hdrs", args=("--json",))
    s = json.loads(r.stdout)
    assert (s["fetched"], s["skipped"]) == (2, 0)
    got = contents(client, "hdrs")
    hdr_only = [m for m in got if m.startswith(b"X-Gannet-Truncated:")]
    assert len(hdr_only) == 1
    head = ct.local_form(big).split(b"\n\n", 1)[0] + b"\n\n"
    assert hdr_only[0].split(b"\n", 1)[1] == head
    # Neither is fetched again.
    s = json.loads(client.fetch("hdrs", args=("--json",)).stdout)
    assert (s["new"], s["fetched"]) == (0, 0)


def test_mda_and_filter(gannetd, client, certs, tmp_path):
    srv = gannetd()
    msgs = [("keep", g.header("keep") + b"ham\n"), ("spam", g.header("spam") + b"SPAM\n")]
    fill(srv, "alice", msgs)
    out = tmp_path / "mda-out"
    out.mkdir()
    mda = "cat > %s/$GANNET_KEY.msg" % out
    filt = "! grep -q SPAM"  # exit 1 (drop) when the message holds SPAM
    client.write_config({"acct": account_for(srv, "alice", certs, mda=mda, filter=filt)})
    r = client.fetch(args=("--json",))
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert (s["fetched"], s["dropped"]) == (1, 1)
    files = os.listdir(out)
    assert len(files) == 1 and files[0].startswith("u:")
    assert open(out / files[0], "rb").read() == ct.local_form(msgs[0][1])
    s = json.loads(client.fetch(args=("--json",)).stdout)
    assert (s["new"], s["fetched"], s["dropped"]) == (0, 0, 0)


def test_mda_failure_keeps_message(gannetd, client, certs):
    srv = gannetd()
    fill(srv, "alice", [("a", g.header("a") + b"x\n")])
    client.write_config({"acct": account_for(srv, "alice", certs, mda="exit 3", keep="no")})
    r = client.fetch(args=("--json",))
    assert r.returncode == ct.EX_IOERR
    s = json.loads(r.stdout)
    assert (s["fetched"], s["errors"], s["deleted"]) == (0, 1, 0)
    assert "status 3" in s["error"]
    assert srv.stat("alice")[0] == 1


def test_wrong_password(gannetd, client, certs):
    srv = gannetd()
    acc = account_for(srv, "alice", certs)
    acc["password"] = "wrong-password"
    client.write_config({"acct": acc})
    r = client.fetch()
    assert r.returncode == ct.EX_NOPERM, r.stderr
    assert "wrong-password" not in r.stderr
    r = client.run("check", "acct")
    assert r.returncode == ct.EX_NOPERM
    assert "FAILED at login" in r.stdout and "hint:" in r.stdout


def test_password_command(gannetd, client, certs):
    srv = gannetd()
    fill(srv, "alice", [("a", g.header("a") + b"x\n")])
    acc = account_for(srv, "alice", certs, password=None,
                      password_command="printf '%s\\nsecond line\\n'" % srv.password("alice"))
    client.write_config({"acct": acc}, mode=0o644)  # no password in the file: 0644 is fine
    r = client.fetch()
    assert r.returncode == 0, r.stderr
    assert len(client.delivered()) == 1


def test_config_permissions(gannetd, client, certs):
    srv = gannetd()
    client.write_config({"acct": account_for(srv, "alice", certs)}, mode=0o644)
    r = client.fetch()
    assert r.returncode == ct.EX_CONFIG
    assert "chmod 600" in r.stderr


def test_check(gannetd, client, certs):
    srv = gannetd()
    fill(srv, "alice", [("a", g.header("a") + b"x\n")])
    client.write_config({"acct": account_for(srv, "alice", certs, tls="starttls")})
    r = client.run("check", "acct")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "mailbox:      1 messages" in r.stdout
    assert "certificate verified for localhost" in r.stdout
    assert "UIDL" in r.stdout and "STLS" not in r.stdout.split("capabilities:")[1].split("\n")[0]


def test_probe(gannetd, client, certs):
    srv = gannetd()
    r = client.run("probe", "--ca-file", certs["ca"], "localhost:%d" % srv.tls_port)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "subject      CN=localhost" in r.stdout
    assert "verify       ok" in r.stdout
    assert "pin          " + ct.spki_pin(certs["good"][0]) in r.stdout
    assert re.search(r"expires\s+\w+ +\d+ [\d:]+ \d{4} GMT", r.stdout)
    assert "TLSv1.3" in r.stdout
    r = client.run("probe", "--starttls", "--ca-file", certs["ca"], "127.0.0.1:%d" % srv.port)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "PIPELINING" in r.stdout and "verify       ok" in r.stdout


def test_pin(gannetd, client, certs):
    srv = gannetd()
    fill(srv, "alice", [("a", g.header("a") + b"x\n")])
    good = ct.spki_pin(certs["good"][0])
    bad = ct.spki_pin(certs["other"][0])
    client.write_config({"ok": account_for(srv, "alice", certs, pin=good),
                         "bad": account_for(srv, "alice", certs, pin=bad)})
    assert client.fetch("ok").returncode == 0
    r = client.fetch("bad")
    assert r.returncode == ct.EX_PROTOCOL
    assert "pin" in r.stderr
    assert client.delivered("bad") == {}


def test_untrusted_ca(gannetd, client, certs):
    srv = gannetd()
    acc = account_for(srv, "alice", certs)
    del acc["ca_file"]  # the system store does not know the test CA
    client.write_config({"acct": acc})
    r = client.fetch()
    assert r.returncode == ct.EX_PROTOCOL
    assert "certificate verification failed" in r.stderr


def test_every_polls_until_sigterm(gannetd, client, certs):
    srv = gannetd()
    client.write_config({"acct": account_for(srv, "alice", certs)})
    p = client.popen("--every", "1s", "fetch")
    try:
        time.sleep(ct.t(1.0))
        srv.maildir("alice").deliver(g.header("late") + b"late mail\n")
        deadline = time.monotonic() + ct.t(30)
        while not client.delivered() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(client.delivered()) == 1, "no second poll within 30 s"
    finally:
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=ct.t(30))
    assert p.returncode == 0, err.decode()


def test_parallel_accounts(gannetd, client, certs):
    srv = gannetd(users=("alice", "bob", "carol"))
    accs = {}
    for u in ("alice", "bob", "carol"):
        fill(srv, u, [(u, g.header(u) + u.encode() + b"\n")])
        accs[u] = account_for(srv, u, certs)
    client.write_config(accs, extra_global="jobs = 3")
    r = client.fetch(args=("--json",))
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert sorted(x["account"] for x in lines) == ["alice", "bob", "carol"]
    assert all(x["fetched"] == 1 for x in lines)
    for u in ("alice", "bob", "carol"):
        assert len(client.delivered(u)) == 1


def test_state_files_private(gannetd, client, certs):
    srv = gannetd()
    fill(srv, "alice", [("a", g.header("a") + b"x\n")])
    client.write_config({"acct": account_for(srv, "alice", certs)})
    assert client.fetch().returncode == 0
    st = os.stat(os.path.join(client.state, "acct.journal"))
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert stat.S_IMODE(os.stat(client.state).st_mode) == 0o700
