"""Issue 3 item 5: the maildrop lock ([IN-USE]) with maildir_lock = flock and = dotlock.

Across sessions, processes and gannetd instances; released when the holder dies; a stale dotlock
(dead pid of this host, or untouched for 5 minutes) does not lock the user out, a live foreign one
does; delivery never waits for it."""

import fcntl
import os
import signal
import socket
import subprocess
import time

import pytest

import gannettest as g

KINDS = ["flock", "dotlock"]
LOCKFILE = {"flock": "gannet.lock", "dotlock": "gannet.dotlock"}
IN_USE = b"-ERR [IN-USE] Mailbox is in use by another POP3 session\r\n"
STALE_SEC = 300  # MAILDIR_DOTLOCK_STALE_SEC


def lock_path(srv, user, kind):
    return os.path.join(srv.maildir(user).root, LOCKFILE[kind])


def try_login(srv, user):
    """The PASS reply of a fresh connection, and the connection."""
    c = srv.connect()
    assert c.cmd("USER " + user).startswith(b"+OK")
    return c.cmd("PASS " + srv.password(user)), c


def assert_in_use(srv, user):
    r, c = try_login(srv, user)
    assert r == IN_USE, r
    assert c.wait_closed(g.t(5)) == b""


def holder_pid(srv, path):
    """The gannetd process that has the lock file PATH open (the session's mail process)."""
    for p in srv.pids():
        try:
            fds = os.listdir("/proc/%d/fd" % p)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink("/proc/%d/fd/%s" % (p, fd)) == path:
                    return p
            except OSError:
                pass
    raise AssertionError("no gannetd process holds %s" % path)


def wait_gone(pid, timeout=5.0):
    """Until PID is reaped (a zombie would still pass kill(pid, 0))."""
    deadline = time.monotonic() + g.t(timeout)
    while os.path.exists("/proc/%d" % pid):
        assert time.monotonic() < deadline, "process %d still there" % pid
        time.sleep(0.02)


def dead_pid():
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def write_lock(path, content, age=0):
    with open(path, "w") as f:
        f.write(content)
    t = time.time() - age
    os.utime(path, (t, t))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("isolation", ["shared", "per-connection"])
def test_second_session_in_use(gannet, kind, isolation):
    """Two sessions of one user: the second gets exactly [IN-USE] and is closed; the holder, and
    other users, go on; after QUIT the lock (a dotlock file too) is gone."""
    srv = gannet(isolation=isolation, maildir_lock=kind)
    a = srv.login("alice")
    assert_in_use(srv, "alice")
    assert a.cmd("STAT") == b"+OK 0 0\r\n"
    srv.login("bob").quit()
    assert a.quit().startswith(b"+OK")
    if kind == "dotlock":
        assert not os.path.exists(lock_path(srv, "alice", kind))
    assert srv.login("alice").quit().startswith(b"+OK")


@pytest.mark.parametrize("kind", KINDS)
def test_two_instances_exclude_each_other(gannet, tmp_path, kind):
    """Two gannetd (own ports, own state dirs) serving one Maildir on this host."""
    home = str(tmp_path / "shared-home")
    srvs = []
    for _ in range(2):
        s = gannet(users=(), start=False, maildir_lock=kind)
        s.add_user("alice", home=home)
        srvs.append(s.start())
    one, two = srvs
    one.maildir("alice").deliver(g.header("shared") + b"body\n")
    a = one.login("alice")
    assert_in_use(two, "alice")
    assert a.quit().startswith(b"+OK")
    b = two.login("alice")
    assert b.cmd("STAT").startswith(b"+OK 1 ")
    assert_in_use(one, "alice")
    assert b.quit().startswith(b"+OK")


@pytest.mark.parametrize("kind", KINDS)
def test_holder_killed(gannet, kind):
    """kill -9 of the session's own mail process (per-connection): the next login succeeds at
    once, on its first try. A dotlock file stays behind, but names a dead pid of this host."""
    srv = gannet(isolation="per-connection", maildir_lock=kind)
    srv.maildir("alice").deliver(g.header("kept") + b"body\n")
    a = srv.login("alice")
    path = lock_path(srv, "alice", kind)
    pid = holder_pid(srv, path)
    if kind == "dotlock":
        with open(path) as f:
            assert f.read() == "%d %s\n" % (pid, socket.gethostname())
    os.kill(pid, signal.SIGKILL)
    wait_gone(pid)
    a.close()
    if kind == "dotlock":
        assert os.path.exists(path)
    r, c = try_login(srv, "alice")
    assert r.startswith(b"+OK"), r
    assert c.cmd("STAT").startswith(b"+OK 1 ")
    assert c.quit().startswith(b"+OK")
    if kind == "dotlock":
        assert "event=stale_lock_removed" in srv.log_text()


def test_dotlock_removed_on_sigterm(gannet):
    """SIGTERM to the mail process removes its dotlock (SIGKILL cannot: see test_holder_killed)."""
    srv = gannet(isolation="per-connection", maildir_lock="dotlock")
    a = srv.login("alice")  # kept: a dropped connection would end the session itself
    path = lock_path(srv, "alice", "dotlock")
    pid = holder_pid(srv, path)
    os.kill(pid, signal.SIGTERM)
    wait_gone(pid)
    a.close()
    assert not os.path.exists(path)
    assert srv.login("alice").quit().startswith(b"+OK")


@pytest.mark.parametrize("content", ["{pid} {host}\n", "{pid}\n"])
def test_stale_dotlock_of_dead_pid(gannet, content):
    """A dotlock left by a process of this host that is gone (with or without the host name, as
    `dotlockfile -p` writes it) does not keep the user out, however fresh it is."""
    srv = gannet(maildir_lock="dotlock")
    write_lock(lock_path(srv, "alice", "dotlock"),
               content.format(pid=dead_pid(), host=socket.gethostname()))
    assert srv.login("alice").quit().startswith(b"+OK")


def test_dotlock_of_other_host(gannet):
    """A pid from another host means nothing here: its lock holds until it is 5 minutes old."""
    srv = gannet(maildir_lock="dotlock")
    path = lock_path(srv, "alice", "dotlock")
    write_lock(path, "%d other-host.invalid\n" % dead_pid(), age=STALE_SEC - 60)
    assert_in_use(srv, "alice")
    write_lock(path, "%d other-host.invalid\n" % dead_pid(), age=STALE_SEC + 5)
    assert srv.login("alice").quit().startswith(b"+OK")
    assert not os.path.exists(path)


@pytest.mark.parametrize("kind", KINDS)
def test_live_foreign_holder(gannet, kind):
    """A lock held by a live process that is not gannetd: flock(2) on gannet.lock, or
    `dotlockfile -p` (liblockfile's tool, which writes our pid) -> [IN-USE] until released."""
    srv = gannet(maildir_lock=kind)
    path = lock_path(srv, "alice", kind)
    if kind == "flock":
        fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
    else:
        subprocess.run(["dotlockfile", "-l", "-r", "0", "-p", path], check=True, timeout=10)
        with open(path) as f:
            assert f.read().strip() == str(os.getpid())
    assert_in_use(srv, "alice")
    if kind == "flock":
        os.close(fd)
    else:
        subprocess.run(["dotlockfile", "-u", path], check=True, timeout=10)
    assert srv.login("alice").quit().startswith(b"+OK")


def test_dotlock_lost_quit_deletes_nothing(gannet):
    """A dotlock taken over while the session stalled (here: replaced by hand) is noticed at QUIT:
    no UPDATE, and the new owner's lock file is left alone."""
    srv = gannet(maildir_lock="dotlock")
    md = srv.maildir("alice")
    md.deliver(g.header("keep") + b"body\n")
    a = srv.login("alice")
    assert a.cmd("DELE 1").startswith(b"+OK")
    path = lock_path(srv, "alice", "dotlock")
    os.unlink(path)
    write_lock(path, "1 other-host.invalid\n")
    assert a.cmd("QUIT") == b"-ERR [IN-USE] Mailbox lock lost, nothing deleted\r\n"
    assert len(md.files()) == 1
    with open(path) as f:
        assert f.read() == "1 other-host.invalid\n"


@pytest.mark.parametrize("kind", KINDS)
def test_delivery_never_waits(gannet, kind):
    """An MDA in its own process (tmp/ then rename into new/, as Postfix's maildir delivery) is
    never blocked by a session; the message is not in that session's snapshot and appears at the
    next login."""
    srv = gannet(maildir_lock=kind)
    md = srv.maildir("alice")
    md.deliver(g.header("first") + b"one\n")
    a = srv.login("alice")
    assert a.cmd("STAT").startswith(b"+OK 1 ")
    body = g.header("late") + b"delivered during the session\n"
    tmp = os.path.join(md.root, "tmp", "late.1.gannet.test")
    with open(tmp, "wb") as f:
        f.write(body)
    t0 = time.monotonic()
    subprocess.run(["mv", tmp, os.path.join(md.root, "new", "1800000000.late.gannet.test")],
                   check=True, timeout=g.t(5))
    assert time.monotonic() - t0 < g.t(2)
    assert a.cmd("STAT").startswith(b"+OK 1 ")
    assert a.quit().startswith(b"+OK")
    b = srv.login("alice")
    assert b.cmd("STAT").startswith(b"+OK 2 ")
    assert b.retr(2) == g.retr_wire(body)
    b.quit()
