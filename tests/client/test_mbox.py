"""mboxrd delivery (delivery = mbox:PATH): the From_ line and its envelope sender, >From quoting,
once-only, fcntl and dot locking, and the repair of an append a crash cut off."""

import fcntl
import os
import socket
import subprocess
import time

import pytest

import clienttest as ct
from clienttest import g
from conftest import account_for
from hostile import MiniPop

TRICKY = (g.header("tricky", b"Return-Path: <bounce+x@lists.example>\n") +
          b"From the start of a line\n>From already quoted\n>>From twice\nFrom\n"
          b" From indented\nFromage\n.From dotted\n\nlast\n")
PLAIN = g.header("plain") + b"no envelope sender here\n"
NULLRP = g.header("nullrp", b"Return-Path: <>\n") + b"a bounce\n"


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


def mbox_account(client, server_account, **extra):
    s = dict(server_account)
    s["delivery"] = "mbox:%s" % client.mbox()
    s.update(extra)
    return s


def read(path):
    with open(path, "rb") as f:
        return f.read()


def test_mbox_exact_quoting_and_sender(pop, client):
    s = pop(messages=[TRICKY, PLAIN, NULLRP])
    client.write_config({"acct": mbox_account(client, s.account(auth="user"))})
    r = client.fetch()
    assert r.returncode == 0, r.stderr
    data = read(client.mbox())
    parsed = ct.mbox_parse(data)
    assert [m for _f, m in parsed] == [ct.local_form(m) for m in (TRICKY, PLAIN, NULLRP)]
    senders = [f.split(b" ")[1] for f, _m in parsed]
    assert senders == [b"bounce+x@lists.example", b"MAILER-DAEMON", b"MAILER-DAEMON"]
    # the exact mboxrd bytes of the tricky body: one more '>' on every ^>*From line only
    assert (b"\n>From the start of a line\n>>From already quoted\n>>>From twice\nFrom\n"
            b" From indented\nFromage\n.From dotted\n\nlast\n\n") in data
    assert os.stat(client.mbox()).st_mode & 0o777 == 0o600
    assert not os.path.exists(client.mbox() + ".lock")
    # once only; new mail is appended after the old
    s.box.append(("uid-new", g.header("new") + b"new one\n"))
    assert client.fetch().returncode == 0
    assert ct.mbox_messages(client.mbox())[3:] == [ct.local_form(s.box[3][1])]
    assert read(client.mbox()).startswith(data)
    assert s.commands().count(b"RETR") == 4


def test_mbox_against_gannetd_with_delete(gannetd, client, certs):
    srv = gannetd()
    msgs = g.varied_messages()
    for _l, m in msgs:
        srv.maildir("alice").deliver(m)
    client.write_config({"acct": mbox_account(client, account_for(srv, "alice", certs),
                                              keep="no")})
    r = client.fetch()
    assert r.returncode == 0, r.stderr
    assert sorted(ct.mbox_messages(client.mbox())) == sorted(ct.local_form(m) for _l, m in msgs)
    assert srv.stat("alice")[0] == 0


def hold_dotlock(path, pid=None, age=0):
    lock = path + ".lock"
    with open(lock, "w") as f:
        f.write("%d %s\n" % (pid or os.getpid(), socket.gethostname()))
    if age:
        t = time.time() - age
        os.utime(lock, (t, t))
    return lock


def test_mbox_waits_for_locks(pop, client):
    s = pop(messages=[PLAIN])
    client.write_config({"acct": mbox_account(client, s.account(auth="user"))})
    os.makedirs(os.path.dirname(client.mbox()), exist_ok=True)
    with open(client.mbox(), "ab") as f:
        fcntl.lockf(f, fcntl.LOCK_EX)
        p = client.popen("fetch")
        # RETR done, delivery waiting for our lock: the mbox stays empty while we hold it
        deadline = time.monotonic() + ct.t(10)
        while b"RETR" not in s.commands() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.5)
        assert p.poll() is None and os.path.getsize(client.mbox()) == 0
        fcntl.lockf(f, fcntl.LOCK_UN)
    assert p.wait(timeout=ct.t(20)) == 0
    assert ct.mbox_messages(client.mbox()) == [ct.local_form(PLAIN)]
    # a dotlock held by a live process is waited for as well
    s.box.append(("uid-2", g.header("two") + b"second\n"))
    lock = hold_dotlock(client.mbox())
    p = client.popen("fetch")
    deadline = time.monotonic() + ct.t(10)
    while s.commands().count(b"RETR") < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.5)
    assert p.poll() is None and len(ct.mbox_messages(client.mbox())) == 1
    os.unlink(lock)
    assert p.wait(timeout=ct.t(20)) == 0
    assert len(ct.mbox_messages(client.mbox())) == 2


@pytest.mark.parametrize("kind", ["dead-pid", "old"])
def test_mbox_breaks_stale_dotlock(pop, client, kind):
    s = pop(messages=[PLAIN])
    client.write_config({"acct": mbox_account(client, s.account(auth="user"))})
    os.makedirs(os.path.dirname(client.mbox()), exist_ok=True)
    if kind == "dead-pid":
        child = subprocess.Popen(["true"])
        child.wait()
        hold_dotlock(client.mbox(), pid=child.pid)
    else:
        # a live process (us), but the lock is older than GANNET_DOTLOCK_STALE (300 s)
        hold_dotlock(client.mbox(), age=400)
    t0 = time.monotonic()
    r = client.fetch()
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t0 < ct.t(10)
    assert ct.mbox_messages(client.mbox()) == [ct.local_form(PLAIN)]
    assert not os.path.exists(client.mbox() + ".lock")


def record(client, off, end, key, account="acct"):
    st = os.stat(client.mbox())
    path = os.path.join(client.state, account + ".mbox-append")
    with open(path, "w") as f:
        f.write("gannet-mbox-append %d %d %d %d S %s\n" % (off, end, st.st_dev, st.st_ino, key))
    return path


FOREIGN = b"From someone@example.org Mon Jan  5 10:00:00 2026\nSubject: local\n\nmine\n\n"
FOREIGN_MSG = b"Subject: local\n\nmine\n"  # as mbox_messages reads it back


def test_mbox_crash_partial_append_cut_off(pop, client):
    """A crash mid-append left part of a message: the next run cuts it off and fetches again."""
    s = pop(messages=[PLAIN, TRICKY])
    client.write_config({"acct": mbox_account(client, s.account(auth="user"))})
    os.makedirs(client.state, exist_ok=True)
    os.makedirs(os.path.dirname(client.mbox()), exist_ok=True)
    with open(client.mbox(), "wb") as f:
        f.write(FOREIGN + b"From MAILER-DAEMON Mon Jan  5 10:00:01 2026\nSubject: pl")
    rec = record(client, len(FOREIGN), len(FOREIGN) + 500, "u:uid-1")
    r = client.fetch()
    assert r.returncode == 0, r.stderr
    assert ct.mbox_messages(client.mbox()) == [FOREIGN_MSG, ct.local_form(PLAIN),
                                               ct.local_form(TRICKY)]
    assert read(client.mbox()).startswith(FOREIGN + b"From MAILER-DAEMON ")
    with open(rec) as f:  # the record of the last append now
        assert f.read().split()[-1] == "u:uid-2"
    assert s.commands().count(b"RETR") == 2


def test_mbox_crash_after_complete_append_then_other_mail(pop, client):
    """Complete copy, then a local MDA appended more mail before the next run: the copy stays,
    it is recorded as seen, and nothing is fetched twice or cut off."""
    s = pop(messages=[PLAIN, TRICKY])
    client.write_config({"acct": mbox_account(client, s.account(auth="user"))})
    os.makedirs(client.state, exist_ok=True)
    os.makedirs(os.path.dirname(client.mbox()), exist_ok=True)
    ours = b"From MAILER-DAEMON Mon Jan  5 10:00:01 2026\n" + ct.local_form(PLAIN) + b"\n"
    with open(client.mbox(), "wb") as f:
        f.write(ours + FOREIGN)
    record(client, 0, len(ours), "u:uid-1")
    r = client.fetch()
    assert r.returncode == 0, r.stderr
    assert ct.mbox_messages(client.mbox()) == [ct.local_form(PLAIN), FOREIGN_MSG,
                                               ct.local_form(TRICKY)]
    assert s.commands().count(b"RETR") == 1


def test_mbox_record_for_seen_message_ignored(pop, client):
    """A record whose message the journal already has changes nothing (the normal state after
    every successful append)."""
    s = pop(messages=[PLAIN])
    client.write_config({"acct": mbox_account(client, s.account(auth="user"))})
    assert client.fetch().returncode == 0
    before = read(client.mbox())
    record(client, 0, len(before), "u:uid-1")
    assert client.fetch().returncode == 0
    assert read(client.mbox()) == before


def test_mbox_config_errors(client):
    client.write_config({"acct": {"host": "h", "user": "u", "password": "p",
                                  "delivery": "mbox:"}})
    r = client.fetch()
    assert r.returncode == ct.EX_CONFIG
    assert "delivery must be maildir:PATH, mbox:PATH or mda:COMMAND" in r.stderr
    client.write_config({"acct": {"host": "h", "user": "u", "password": "p",
                                  "mbox": "/tmp/x", "maildir": "/tmp/y"}})
    r = client.fetch()
    assert r.returncode == ct.EX_CONFIG
    assert "exactly one delivery target" in r.stderr
