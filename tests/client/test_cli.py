"""gannet's command line, config file, journal and progress bar (no network needed beyond the
scripted server)."""

import json
import os
import pty
import re
import subprocess
import time

import pytest

import clienttest as ct
from clienttest import g
from hostile import MiniPop

MSGS = [g.header("m%d" % i) + b"body %d\n" % i for i in range(5)]


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


def write_raw(client, text, mode=0o600):
    with open(client.config, "w") as f:
        f.write(text)
    os.chmod(client.config, mode)


def test_usage(client):
    assert client.run().returncode == ct.EX_USAGE
    assert client.run("frobnicate").returncode == ct.EX_USAGE
    assert client.run("--every", "soon", "fetch").returncode == ct.EX_USAGE
    r = client.run("--help")
    assert r.returncode == 0 and "usage:" in r.stdout


def test_missing_config(client):
    r = client.fetch()
    assert r.returncode == ct.EX_NOINPUT
    assert ".config/gannet/config" in r.stderr


BASE = "state_dir = /tmp/x\n[a]\nhost = h\nuser = u\npassword = p\nmaildir = /tmp/m\n"


@pytest.mark.parametrize("text,line,words", [
    (BASE + "colour = blue\n", 7, "unknown setting"),
    (BASE + "host = again\n", 7, "duplicate setting"),
    (BASE + "port = 70000\n", 7, "port must be"),
    (BASE + "tls = maybe\n", 7, "tls must be"),
    (BASE + "keep = forever\n", 7, "keep must be"),
    (BASE + "max_size = 10Q\n", 7, "max_size"),
    (BASE + "timeout = 0\n", 7, "out of range"),
    (BASE + "password_command = pass x\n", 2, "exactly one of password"),
    (BASE + "mda = procmail\n", 2, "exactly one delivery target"),
    (BASE + "pin = sha256//nope\n", 7, "pin must be"),
    (BASE + "tls = none\npin = sha256//" + "A" * 43 + "=\n", 2, "pin needs TLS"),
    ("[a]\nuser = u\npassword = p\nmaildir = /m\n", 1, "host is missing"),
    ("[bad name]\n", 1, "account names"),
    ("[a]\nhost = h\nuser = u\npassword = p\nmaildir = /m\n[a]\n", 6, "duplicate account"),
    ("jobs = 99\n", 1, "jobs must be"),
    ("colour = blue\n", 1, "unknown global setting"),
    ("# nothing\n", 0, "no [account] section"),
    (BASE + "user \n", 7, "expected key = value"),
    (BASE.replace("password = p", 'password = "p'), 5, "unterminated"),
    (BASE + "x" * 2000 + "\n", 7, "line too long"),
])
def test_config_errors(client, text, line, words):
    write_raw(client, text)
    r = client.fetch()
    assert r.returncode == ct.EX_CONFIG, r.stderr
    assert "%s:%d: " % (client.config, line) in r.stderr and words in r.stderr, r.stderr


def test_config_quoting_and_defaults(pop, client):
    s = pop(messages=MSGS[:1], password=" p#w \"x\" ")
    write_raw(client, "# comment\nstate_dir = %s\n\n[acct]\n  host = 127.0.0.1  \nport = %d\n"
              "tls = none\nuser = u\npassword = \" p#w \\\"x\\\" \"\nmaildir = %s\nauth = user\n"
              % (client.state, s.port, client.maildir()))
    r = client.fetch()
    assert r.returncode == 0, r.stderr
    assert any(ln == b'PASS  p#w "x" ' for ln in s.log)


def test_tls_is_the_default(client):
    """No tls line means implicit TLS on 995: never plaintext unless written (C-014, C-042)."""
    write_raw(client, "state_dir = %s\n[a]\nhost = 127.0.0.1\nuser = u\npassword = p\n"
              "maildir = %s\ntimeout = 2\n" % (client.state, client.maildir()))
    r = client.run("check", "a")
    assert "server:       127.0.0.1:995 (tls)" in r.stdout


def test_unknown_account(pop, client):
    s = pop(messages=MSGS)
    client.write_config({"acct": s.account()})
    assert client.fetch("nope").returncode == ct.EX_USAGE
    assert client.run("check", "nope").returncode == ct.EX_USAGE


def test_connection_refused_words(client):
    port = g.free_port()
    client.write_config({"acct": {"host": "127.0.0.1", "port": port, "tls": "none",
                                  "user": "u", "password": "p"}})
    r = client.run("check", "acct")
    assert r.returncode == ct.EX_UNAVAILABLE
    assert "refused the connection" in r.stdout and "hint:" in r.stdout


def test_account_lock(pop, client):
    class Slow(MiniPop):
        def cmd_retr(self, sess, arg):
            time.sleep(1.5)
            return MiniPop.cmd_retr(self, sess, arg)

    s = pop(Slow, messages=MSGS[:1])
    client.write_config({"acct": s.account()})
    p = client.popen("fetch")
    time.sleep(0.7)
    r = client.fetch()
    assert r.returncode == ct.EX_TEMPFAIL
    assert "another gannet" in r.stderr
    p.communicate(timeout=ct.t(20))
    assert p.returncode == 0
    assert len(client.delivered()) == 1


def test_journal_repair_and_damage(pop, client):
    s = pop(messages=MSGS)
    client.write_config({"acct": s.account()})
    assert client.fetch().returncode == 0
    j = os.path.join(client.state, "acct.journal")
    # A record cut off by a crash is dropped, nothing is fetched twice.
    with open(j, "ab") as f:
        f.write(b"S 17000")
    r = client.fetch(args=("--json",))
    assert r.returncode == 0 and json.loads(r.stdout)["new"] == 0
    assert "incomplete last record" in r.stderr
    assert open(j, "rb").read().endswith(b"\n")
    # Damage in the middle is not guessed around.
    data = open(j, "rb").read().split(b"\n")
    data[2] = b"Q garbage"
    with open(j, "wb") as f:
        f.write(b"\n".join(data))
    r = client.fetch()
    assert r.returncode == ct.EX_DATAERR
    assert "damaged near line 3" in r.stderr
    assert s.commands().count(b"RETR") == 5


def test_journal_compaction(pop, client):
    s = pop(messages=[g.header("c%d" % i) + b"x\n" for i in range(100)])
    client.write_config({"acct": s.account(keep="no")})
    assert client.fetch().returncode == 0
    j = os.path.join(client.state, "acct.journal")
    # 100 P + 100 S records, all for messages that are now gone
    assert open(j).read().count("\n") > 150
    assert client.fetch().returncode == 0  # the empty maildrop lets the journal shrink
    assert open(j).read() == "gannet-journal 1\n"


def test_recovery_from_cur(pop, client):
    """A crash after the rename into new/ but before the journal record, then the mail reader
    moved the message to cur/: the next run finds it there and does not deliver it again."""
    s = pop(messages=MSGS[:1])
    client.write_config({"acct": s.account()})
    assert client.fetch().returncode == 0
    (name,) = client.delivered()
    j = os.path.join(client.state, "acct.journal")
    lines = open(j).read().splitlines()
    with open(j, "w") as f:  # only the "P" record survived
        f.write("\n".join(ln for ln in lines if not ln.startswith("S ")) + "\n")
    os.rename(os.path.join(client.maildir(), "new", name),
              os.path.join(client.maildir(), "cur", name + ":2,S"))
    r = client.fetch(args=("-v", "--json"))
    assert r.returncode == 0, r.stderr
    assert "delivered by an interrupted run" in r.stderr
    assert json.loads(r.stdout)["fetched"] == 0
    assert list(client.delivered()) == [name + ":2,S"]
    assert s.commands().count(b"RETR") == 1


def test_progress_bar_on_a_terminal(pop, client):
    many = [g.big_message(200000, seed=i, subject="p%d" % i) for i in range(20)]

    class Slowish(MiniPop):
        def cmd_retr(self, sess, arg):
            time.sleep(0.05)
            return MiniPop.cmd_retr(self, sess, arg)

    s = pop(Slowish, messages=many)
    client.write_config({"acct": s.account()})
    master, slave = pty.openpty()
    p = subprocess.Popen([ct.GANNET, "fetch"], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=slave, env=client.env(),
                         cwd=client.base)
    os.close(slave)
    out = b""
    while True:
        try:
            d = os.read(master, 65536)
        except OSError:
            break
        if not d:
            break
        out += d
    p.communicate(timeout=ct.t(30))
    os.close(master)
    text = out.decode("utf-8", "replace")
    assert p.returncode == 0, text
    assert re.search(r"\racct \d+/20 msgs [\d.]+ [kM]?B/[\d.]+ MB [\d.]+ [kM]?B/s", text), text
    assert "acct: 20 new, 20 fetched" in text
    # not on a terminal: quiet
    r = client.fetch()
    assert r.stderr == "" and r.stdout == ""
