"""Privilege separation as root (chroot, setuid per process kind, per-user uids in per-connection
mode) and systemd readiness notification (Type=notify)."""

import os
import pwd
import shutil
import signal
import socket
import tempfile
import time

import pytest

import gannettest as g

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="privilege separation needs root")
NOBODY = pwd.getpwnam("nobody")


def _kind(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        argv = f.read().split(b"\0")
    return argv[2].decode() if len(argv) > 2 and argv[1] == b"-X" else "master"


def _uid(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                return [int(x) for x in line.split()[1:]]
    raise AssertionError("no Uid line")


def _settled_uid(pid, want):
    """_uid(PID), given a moment to become WANT: a per-connection spare login process forked just
    now may not have dropped its privileges yet (slow under ASan), but must within seconds."""
    deadline = time.monotonic() + g.t(5)
    u = _uid(pid)
    while u != want and time.monotonic() < deadline:
        time.sleep(0.05)
        u = _uid(pid)
    return u


def _chown_tree(path, uid, gid):
    for d, dirs, files in os.walk(path):
        os.chown(d, uid, gid)
        for n in files:
            os.chown(os.path.join(d, n), uid, gid)


@pytest.fixture
def world_base(tls_cert):
    """A base directory every uid can traverse (pytest's tmp_path is root-only)."""
    base = tempfile.mkdtemp(prefix="gannet-privsep-", dir="/var/tmp")
    os.chmod(base, 0o755)
    # The certificate is read before privileges drop, but keep it readable for clarity.
    cert_dir = os.path.join(base, "tls")
    os.mkdir(cert_dir, 0o755)
    cert = os.path.join(cert_dir, "cert.pem")
    key = os.path.join(cert_dir, "key.pem")
    shutil.copy(tls_cert[0], cert)
    shutil.copy(tls_cert[1], key)
    os.chmod(key, 0o600)
    servers = []
    yield base, (cert, key), servers
    problems = []
    for s in servers:
        problems += s.finish()
    shutil.rmtree(base, ignore_errors=True)
    assert not problems, problems


def _privsep_server(base, cert, servers, isolation, extra=None):
    empty = os.path.join(base, "empty")
    os.makedirs(empty, exist_ok=True)
    os.chmod(empty, 0o555)
    settings = {"login_user": "nobody", "login_chroot": empty, "auth_user": "nobody",
                "mail_user": "nobody", "isolation": isolation}
    settings.update(extra or {})
    s = g.GannetServer(os.path.join(base, "srv-%s" % isolation), cert, settings)
    os.chmod(s.base, 0o755)
    servers.append(s)
    s.add_user("alice")
    s.maildir("alice").deliver(b"Subject: privsep\n\nhello\n", name="1700000000.M1P1.host")
    s.write_users()
    os.chmod(s.userdb, 0o644)
    _chown_tree(os.path.join(s.base, "home"), NOBODY.pw_uid, NOBODY.pw_gid)
    return s


@root_only
@pytest.mark.parametrize("isolation", ["shared", "per-connection"])
def test_children_drop_privileges_and_login_is_chrooted(world_base, isolation):
    base, cert, servers = world_base
    s = _privsep_server(base, cert, servers, isolation)
    s.start()
    c = s.login("alice", tls=True)
    # While a session is open, every kind of child exists (per-connection: this session's).
    kinds = {}
    for pid in s.pids():
        kinds.setdefault(_kind(pid), []).append(pid)
    assert set(kinds) == {"master", "login", "auth", "mail"}, kinds
    assert _uid(kinds["master"][0])[0] == 0
    for kind in ("login", "auth"):
        for pid in kinds[kind]:
            assert _settled_uid(pid, [NOBODY.pw_uid] * 4) == [NOBODY.pw_uid] * 4, (kind, pid)
    mail_uids = sorted(_uid(pid)[0] for pid in kinds["mail"])
    if isolation == "shared":
        assert mail_uids == [NOBODY.pw_uid] * len(mail_uids), mail_uids
    else:
        # The session's own mail process switched to nobody; the fresh spares waiting for a
        # session stay root until they receive one (they switch to that session's user).
        assert mail_uids.count(NOBODY.pw_uid) == 1, mail_uids
        assert set(mail_uids) <= {0, NOBODY.pw_uid}, mail_uids
    for pid in kinds["login"]:
        assert os.readlink("/proc/%d/root" % pid) == os.path.join(base, "empty")
    for pid in kinds["auth"] + kinds["mail"]:
        assert os.readlink("/proc/%d/root" % pid) == "/"
    assert c.retr(1) == g.retr_wire(b"Subject: privsep\n\nhello\n")
    assert c.quit().startswith(b"+OK")
    # The retrieved message was renamed by the unprivileged mail process.
    assert [n for n in os.listdir(os.path.join(s.maildir("alice").root, "cur"))] == [
        "1700000000.M1P1.host:2,S"]


@root_only
def test_per_connection_mail_process_runs_as_the_users_uid(world_base):
    """Per-connection mode as root: the mail process takes the uid/gid from the user file."""
    base, cert, servers = world_base
    s = _privsep_server(base, cert, servers, "per-connection")
    uid = gid = 54321  # no such account needs to exist: the user file is the authority
    password, home, h = s.users["alice"]
    with open(s.userdb, "w") as f:
        f.write("alice:%s:%d:%d::%s::\n" % (h, uid, gid, home))
    os.chmod(s.userdb, 0o644)
    _chown_tree(home, uid, gid)
    s.start()
    c = s.login("alice")
    mails = [p for p in s.pids() if _kind(p) == "mail"]
    serving = [p for p in mails if _uid(p)[0] != 0]
    assert len(serving) == 1, [(p, _uid(p)) for p in mails]
    assert _uid(serving[0]) == [uid] * 4
    assert c.cmd("STAT") == b"+OK 1 %d\r\n" % len(g.retr_wire(b"Subject: privsep\n\nhello\n")[:-3])
    c.quit()


@root_only
def test_mail_process_without_access_answers_sys_perm(world_base):
    """A Maildir the mail user cannot read is a [SYS/PERM] error, logged, not a crash."""
    base, cert, servers = world_base
    s = _privsep_server(base, cert, servers, "shared")
    os.chown(os.path.join(s.users["alice"][1], "Maildir"), 0, 0)
    os.chmod(os.path.join(s.users["alice"][1], "Maildir"), 0o700)
    s.start()
    c = s.connect()
    c.cmd("USER alice")
    r = c.cmd("PASS " + s.password("alice"))
    assert r.startswith(b"-ERR [SYS/PERM] "), r
    c.wait_closed()
    assert "event=login_failed user=alice reason=maildir" in s.log_text()


def test_systemd_notify_ready_reload_stopping(gannet, tmp_path, monkeypatch):
    """Type=notify: READY=1 once listening, RELOADING=1 then READY=1 on SIGHUP, STOPPING=1."""
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(g.t(10))
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    s = gannet()
    assert sock.recv(4096) == b"READY=1"
    # The server accepts as soon as it said so.
    c = s.connect()
    assert c.greeting.startswith(b"+OK")
    c.close()
    s.reload()
    assert sock.recv(4096) == b"RELOADING=1"
    assert sock.recv(4096) == b"READY=1"
    s.signal(signal.SIGTERM)
    assert sock.recv(4096) == b"STOPPING=1"
    sock.close()
