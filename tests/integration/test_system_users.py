"""System accounts with mbox (issue 3 item 8): a real account made with useradd and chpasswd,
authenticated through PAM (a service file made from etc/pam.d/gannet), its /var/mail mbox served
by a per-connection mail process running as the account's uid, UPDATE by temp file + rename
(kill -9 during UPDATE leaves the old file or the new one, whole), delivery under dotlock + fcntl
meanwhile. Needs root (useradd, /etc/pam.d, /var/mail): skipped otherwise."""

import base64
import fcntl
import grp
import hashlib
import os
import pwd
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

import gannettest as g

if os.geteuid() != 0:
    pytest.skip("system accounts need root: useradd, /etc/pam.d and /var/mail (run as root, as "
                "CI does)", allow_module_level=True)
for _tool in ("useradd", "userdel", "chpasswd"):
    if shutil.which(_tool) is None:
        pytest.skip("%s is not installed" % _tool, allow_module_level=True)

SPOOL = "/var/mail"
PAM_SRC = os.path.join(g.REPO, "etc", "pam.d", "gannet")
FAILED = b"-ERR [AUTH] Authentication failed\r\n"
TEMPFAIL = b"-ERR [SYS/TEMP] Authentication temporarily unavailable\r\n"
IN_USE = b"-ERR [IN-USE] Mailbox is in use by another POP3 session\r\n"
BLOCKED = b"-ERR [SYS/TEMP] Too many failed logins from your address; try again later\r\n"
CRASH_ROUNDS = 15 if g.ASAN else 30  # the rounds test crash safety, not memory errors


# ---------------------------------------------------------------------------------------------
# The account, its PAM service and its mbox


class Account:
    def __init__(self):
        self.name = "gnt%d" % os.getpid()
        self.password = "Pam-pw-%s" % os.urandom(6).hex()
        self.path = os.path.join(SPOOL, self.name)
        self.service = "gannet-test-%d" % os.getpid()
        self.pam_file = os.path.join("/etc/pam.d", self.service)
        self.uid = self.gid = None

    def create(self):
        subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", self.name], check=True,
                       capture_output=True, timeout=30)
        subprocess.run(["chpasswd"], input=("%s:%s\n" % (self.name, self.password)).encode(),
                       check=True, capture_output=True, timeout=30)
        pw = pwd.getpwnam(self.name)
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        shutil.copyfile(PAM_SRC, self.pam_file)

    def remove(self):
        for p in (self.pam_file, self.path, self.path + ".lock",
                  os.path.join(SPOOL, ".%s.gannet-update" % self.name)):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass
        subprocess.run(["userdel", self.name], capture_output=True, timeout=30)

    def write_mbox(self, data):
        """DATA as the account's mbox, owned by it, group mail, mode 0660 (Debian's spool)."""
        with open(self.path, "wb") as f:
            f.write(data)
        os.chown(self.path, self.uid, grp.getgrnam("mail").gr_gid)
        os.chmod(self.path, 0o660)

    def read_mbox(self):
        with open(self.path, "rb") as f:
            return f.read()


def sweep_stale():
    """Remove what a killed run left (its finalizers never ran): accounts gnt<pid> of pytest
    processes that are gone, their PAM files and their spool files."""
    names = {pw.pw_name for pw in pwd.getpwall()} | set(os.listdir(SPOOL))
    for name in names:
        m = re.match(r"^\.?(gnt(\d+))(\.lock|\.gannet-update)?$", name)
        if not m or os.path.exists("/proc/%s" % m.group(2)):
            continue
        stale = Account()
        stale.name, stale.path = m.group(1), os.path.join(SPOOL, m.group(1))
        stale.pam_file = os.path.join("/etc/pam.d", "gannet-test-%s" % m.group(2))
        stale.remove()
        if os.path.exists(stale.pam_file + "-err"):
            os.unlink(stale.pam_file + "-err")


@pytest.fixture(scope="module")
def account():
    if not os.path.isdir(SPOOL):
        pytest.skip("no %s" % SPOOL)
    try:
        grp.getgrnam("mail")
    except KeyError:
        pytest.skip("no group mail")
    sweep_stale()
    a = Account()
    try:
        a.create()
        yield a
    finally:
        a.remove()


@pytest.fixture
def public_dir():
    """A directory every user can reach."""
    d = tempfile.mkdtemp(prefix="gnt-", dir="/tmp")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d)


def start(gannet, account, userdb_dir=None, **settings):
    """A per-connection server with system_users on; USERDB_DIR holds an empty user file the
    unprivileged auth process can read (the default one is under root's 0700 pytest dirs)."""
    conf = dict(isolation="per-connection", system_users="yes", pam_service=account.service,
                log_level="debug")
    conf.update(settings)
    srv = gannet(users=(), tls=False, start=False, **conf)
    if userdb_dir is not None:
        srv.userdb = os.path.join(userdb_dir, "users")
        srv.write_users()
        os.chmod(srv.userdb, 0o644)
    srv.secrets.add(account.password)
    srv.start()
    return srv


# ---------------------------------------------------------------------------------------------
# mbox corpus and the contract of lib/mbox.h


def from_line(i):
    return b"From sender%d@example.org Mon Jan  %d 00:00:00 2024\n" % (i, i % 9 + 1)


def corpus():
    return [
        g.header("plain") + b"Hello\n>From the start of a line\n.a dot line\n"
        b"From inside a paragraph is body\n",
        g.header("crlf").replace(b"\n", b"\r\n") + b"crlf body\r\n.\r\n",
        g.header("xuidl", b"X-UIDL: custom-uidl-0001\n") + b"body\n",
        g.big_message(300 * 1024, seed=3, subject="big"),
        g.header("no-final-newline") + b"line one\nlast line without newline",
    ]


def mbox_bytes(msgs, first=0):
    """An mbox as an MDA writes it: From_ line, message, an empty line after each message that
    ends in a newline (only the last message may lack one)."""
    out = b""
    for k, m in enumerate(msgs):
        out += from_line(first + k) + m
        if m.endswith(b"\n"):
            out += b"\n"
    return out


def uidl(i, msg):
    """lib/mbox.h: the X-UIDL header, else SHA-256 of the From_ line and header lines."""
    head = msg.split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]
    lines = [ln.rstrip(b"\r") for ln in head.split(b"\n")]
    for ln in lines:
        m = re.match(rb"^X-UIDL:[ \t]*(\S{1,70})[ \t]*$", ln, re.I)
        if m:
            return m.group(1)
    h = hashlib.sha256(from_line(i).rstrip(b"\n") + b"\n" + b"".join(ln + b"\n" for ln in lines))
    return h.hexdigest()[:32].encode()


def split_mbox(data):
    """The messages of an mbox file, by the same rules (for the well-formed files of these
    tests: every message that ends in a newline is followed by an empty separator line)."""
    starts = [m.start() for m in re.finditer(rb"(?:^|(?<=\n\n))From ", data)]
    out = []
    for k, p in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(data)
        body = data[data.index(b"\n", p) + 1:end]
        out.append(body[:-1] if body.endswith(b"\n") else body)
    return out


# ---------------------------------------------------------------------------------------------
# Helpers


def login(srv, account, password=None):
    c = srv.connect()
    assert c.greeting.startswith(b"+OK"), c.greeting
    assert c.cmd("USER " + account.name) == b"+OK\r\n"
    r = c.cmd("PASS " + (password or account.password), timeout=g.t(30))
    return c, r


def mail_pid_of(srv, conn):
    """The per-connection mail process holding CONN's socket (gannetd passes plaintext
    sockets on)."""
    port = "%04X" % conn.sock.getsockname()[1]
    inode = None
    with open("/proc/net/tcp") as f:
        for line in list(f)[1:]:
            parts = line.split()
            if parts[1].endswith(":%04X" % srv.port) and parts[2].endswith(":" + port):
                inode = parts[9]
    assert inode is not None
    for pid in srv.pids():
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                if f.read().split(b"\0")[1:3] != [b"-X", b"mail"]:
                    continue
            for fd in os.listdir("/proc/%d/fd" % pid):
                if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == "socket:[%s]" % inode:
                    return pid
        except (OSError, IndexError):
            continue
    raise AssertionError("no mail process holds the session's socket")


def proc_ids(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("Uid", "Gid", "Groups"):
                out[k] = [int(x) for x in v.split()]
    return out


def wait_gone(pid, timeout):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open("/proc/%d/stat" % pid, "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    return
        except OSError:
            return  # reaped already
        assert time.monotonic() < deadline, "process %d still alive" % pid
        time.sleep(0.005)


# ---------------------------------------------------------------------------------------------
# Authentication


def test_pam_login_listing_and_retrieval_exact(gannet, account):
    msgs = corpus()
    account.write_mbox(mbox_bytes(msgs))
    srv = start(gannet, account)
    sizes = [len(g.to_wire(m)) for m in msgs]
    c, r = login(srv, account)
    assert r == b"+OK Logged in, %d messages (%d octets)\r\n" % (len(msgs), sum(sizes))
    assert c.cmd("STAT") == b"+OK %d %d\r\n" % (len(msgs), sum(sizes))
    status, body = c.cmd_multi("LIST")
    assert status == b"+OK %d messages (%d octets)\r\n" % (len(msgs), sum(sizes))
    assert body == b"".join(b"%d %d\r\n" % (i + 1, n) for i, n in enumerate(sizes)) + b".\r\n"
    status, body = c.cmd_multi("UIDL")
    assert status == b"+OK Unique-ID listing follows\r\n"
    assert body == b"".join(b"%d %s\r\n" % (i + 1, uidl(i, m))
                            for i, m in enumerate(msgs)) + b".\r\n"
    assert uidl(2, msgs[2]) == b"custom-uidl-0001"
    for i, m in enumerate(msgs):
        assert c.cmd("LIST %d" % (i + 1)) == b"+OK %d %d\r\n" % (i + 1, sizes[i])
        assert c.cmd("UIDL %d" % (i + 1)) == b"+OK %d %s\r\n" % (i + 1, uidl(i, m))
        status, body = c.cmd_multi("RETR %d" % (i + 1))
        assert status == b"+OK %d octets\r\n" % sizes[i]
        assert body == g.retr_wire(m), i
        for k in (0, 1, 3):
            status, body = c.cmd_multi("TOP %d %d" % (i + 1, k))
            assert status == b"+OK Top of message follows\r\n"
            assert body == g.top_wire(m, k), (i, k)
    assert b">From the start of a line\r\n" in g.retr_wire(msgs[0])
    assert "EXPIRE NEVER" in c.capa()
    assert c.quit() == b"+OK Bye, 0 messages deleted\r\n"
    assert account.read_mbox() == mbox_bytes(msgs)  # nothing deleted: not rewritten


def test_failures_look_alike(gannet, account):
    """Wrong password, unknown name, and an account below first_valid_uid (daemon) get the same
    bytes; SCRAM (no stored verifier) fails cleanly; AUTH PLAIN works."""
    account.write_mbox(mbox_bytes(corpus()[:1]))
    srv = start(gannet, account)
    for user, pw in ((account.name, "wrong-" + account.password), ("gntnosuch%d" % os.getpid(),
                     account.password), ("daemon", account.password)):
        c = srv.connect()
        assert c.cmd("USER " + user) == b"+OK\r\n"
        assert c.cmd("PASS " + pw, timeout=g.t(30)) == FAILED, user
        c.close()
    assert pwd.getpwnam("daemon").pw_uid < 1000
    log = srv.log_text()
    assert "reason=\"uid_out_of_range\"" in log
    assert "reason=\"wrong_password\"" in log

    c = srv.connect()
    first = b"n,,n=%s,r=%s" % (account.name.encode(), base64.b64encode(os.urandom(12)))
    r = c.cmd("AUTH SCRAM-SHA-256 " + base64.b64encode(first).decode(), timeout=g.t(30))
    assert r.startswith(b"+ "), r
    server_first = base64.b64decode(r[2:].strip())
    nonce = dict(kv.split(b"=", 1) for kv in server_first.split(b","))[b"r"]
    final = b"c=biws,r=" + nonce + b",p=" + base64.b64encode(b"\0" * 32)
    assert c.cmd(base64.b64encode(final).decode(), timeout=g.t(30)) == FAILED
    c.close()

    c = srv.connect()
    plain = base64.b64encode(b"\0" + account.name.encode() + b"\0" + account.password.encode())
    srv.secrets.add(plain.decode())
    assert c.cmd("AUTH PLAIN " + plain.decode(), timeout=g.t(30)).startswith(b"+OK Logged in")
    assert c.quit().startswith(b"+OK")


def test_pam_tempfail_and_penalty(gannet, account, tmp_path):
    """A PAM stack that errors (pam_exec of /bin/false: PAM_SYSTEM_ERR) is [SYS/TEMP], not a
    failure; PAM failures feed the brute-force defence like file users' failures."""
    account.write_mbox(b"")
    svc = account.service + "-err"
    with open(os.path.join("/etc/pam.d", svc), "w") as f:
        f.write("auth required pam_exec.so quiet /bin/false\naccount required pam_permit.so\n")
    try:
        srv = start(gannet, account, pam_service=svc)
        c, r = login(srv, account)
        assert r == TEMPFAIL
        c.close()
    finally:
        os.unlink(os.path.join("/etc/pam.d", svc))
    assert "event=auth_tempfail" in srv.log_text()

    srv2 = start(gannet, account, trusted_networks="", disable_plaintext_auth="no",
                 auth_failure_delay="0", auth_failure_delay_max="0", auth_ip_max_failures="2")
    for _ in range(2):
        c, r = login(srv2, account, "wrong-" + account.password)
        assert r == FAILED
        c.close()
    c, r = login(srv2, account)  # the right password, but the address is refused now
    assert r == BLOCKED
    c.close()


def test_config_refusals(account, public_dir):
    path = os.path.join(public_dir, "g.conf")  # nobody must reach the file
    with open(path, "w") as f:
        f.write("listen = 127.0.0.1:%d\nsystem_users = yes\n" % g.free_port())
    out = subprocess.run([g.GANNETD, "-n", "-c", path], capture_output=True,
                         timeout=g.t(10), env=g.run_env())
    assert out.returncode == 1
    assert b"system_users = yes needs isolation = per-connection" in out.stderr
    with open(path, "w") as f:
        f.write("listen = 127.0.0.1:%d\nsystem_users = yes\nisolation = per-connection\n"
                % g.free_port())
    os.chmod(path, 0o644)
    nobody = pwd.getpwnam("nobody")
    out = subprocess.run([g.GANNETD, "-d", "-c", path], capture_output=True,
                         timeout=g.t(10), env=g.run_env(),
                         preexec_fn=lambda: (os.setgid(nobody.pw_gid), os.setuid(nobody.pw_uid)))
    assert out.returncode == 1
    assert b"system_users = yes needs gannetd started as root" in out.stderr


# ---------------------------------------------------------------------------------------------
# The mail process and UPDATE


def test_session_runs_as_the_account(gannet, account, public_dir):
    """As deployed: login and auth unprivileged (nobody), the PAM workers root, the session's
    mail process the account with its groups and mail_privileged_group."""
    account.write_mbox(mbox_bytes(corpus()[:2]))
    srv = start(gannet, account, userdb_dir=public_dir, auth_user="nobody", login_user="nobody")
    c, r = login(srv, account)
    assert r.startswith(b"+OK Logged in, 2 messages")
    nobody = pwd.getpwnam("nobody").pw_uid
    kinds = {}
    for pid in srv.pids():
        try:
            with open("/proc/%d/comm" % pid, "rb") as f:
                kinds.setdefault(f.read().strip(), []).append(proc_ids(pid)["Uid"][0])
        except (OSError, IndexError):
            pass
    # processes still starting are "exe" (before their hello) and not counted
    assert set(kinds[b"gannetd-auth"]) == {nobody}, kinds
    assert set(kinds[b"gannetd-login"]) == {nobody}
    assert set(kinds[b"gannetd-pam"]) == {0}
    ids = proc_ids(mail_pid_of(srv, c))
    assert ids["Uid"] == [account.uid] * 4
    assert ids["Gid"] == [account.gid] * 4
    assert grp.getgrnam("mail").gr_gid in ids["Groups"]
    assert 0 not in ids["Groups"]
    c2, r2 = login(srv, account)
    assert r2 == IN_USE
    c2.close()
    assert c.quit().startswith(b"+OK")


def test_dele_quit_rewrites_exactly_the_kept_messages(gannet, account):
    msgs = corpus()
    account.write_mbox(mbox_bytes(msgs))
    srv = start(gannet, account)
    c, r = login(srv, account)
    assert c.cmd("DELE 1") == b"+OK Message 1 deleted\r\n"
    assert c.cmd("DELE 4") == b"+OK Message 4 deleted\r\n"
    assert c.quit() == b"+OK Bye, 2 messages deleted\r\n"
    kept = [1, 2, 4]
    want = b"".join(from_line(i) + msgs[i] + (b"\n" if msgs[i].endswith(b"\n") else b"")
                    for i in kept)
    assert account.read_mbox() == want
    st = os.stat(account.path)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (
        account.uid, grp.getgrnam("mail").gr_gid, 0o660)
    assert not os.path.exists(os.path.join(SPOOL, ".%s.gannet-update" % account.name))
    c, r = login(srv, account)
    status, body = c.cmd_multi("UIDL")
    assert body == b"".join(b"%d %s\r\n" % (k + 1, uidl(i, msgs[i]))
                            for k, i in enumerate(kept)) + b".\r\n"
    assert c.retr(3) == g.retr_wire(msgs[4])
    assert c.quit() == b"+OK Bye, 0 messages deleted\r\n"


def test_mail_delivered_during_the_session_survives(gannet, account):
    """An MDA appends under dotlock (dotlockfile, liblockfile-bin) and fcntl, as Postfix
    local(8) and procmail do, while a session that deleted a message is open."""
    if shutil.which("dotlockfile") is None:
        pytest.skip("dotlockfile (liblockfile-bin) is not installed")
    msgs = corpus()[:3]
    account.write_mbox(mbox_bytes(msgs))
    srv = start(gannet, account)
    c, r = login(srv, account)
    assert c.cmd("DELE 2") == b"+OK Message 2 deleted\r\n"
    new = g.header("late") + b"delivered while the session was open\n"
    lock = account.path + ".lock"
    subprocess.run(["dotlockfile", "-l", "-r", "5", lock], check=True, timeout=30)
    try:
        with open(account.path, "ab") as f:
            fcntl.lockf(f, fcntl.LOCK_EX)
            f.write(from_line(7) + new + b"\n")
            f.flush()
            fcntl.lockf(f, fcntl.LOCK_UN)
    finally:
        subprocess.run(["dotlockfile", "-u", lock], check=True, timeout=30)
    assert c.quit() == b"+OK Bye, 1 messages deleted\r\n"
    assert account.read_mbox() == (from_line(0) + msgs[0] + b"\n" + from_line(2) + msgs[2] +
                                   b"\n" + from_line(7) + new + b"\n")
    c, r = login(srv, account)
    assert r.startswith(b"+OK Logged in, 3 messages")
    assert c.retr(3) == g.retr_wire(new)
    assert c.quit().startswith(b"+OK")


def test_kill_during_update_leaves_old_or_new_file(gannet, account):
    """kill -9 of the session's mail process at random moments after QUIT: the mbox is the old
    file or the new one, whole (no message lost, none doubled, a removed one never back), and the
    next login works."""
    msgs = [g.big_message(1024 * 1024, seed=k, subject="m%d" % k) for k in range(8)]
    old = mbox_bytes(msgs)
    srv = start(gannet, account)
    rnd = random.Random(8)
    account.write_mbox(old)
    c, r = login(srv, account)
    for k in range(0, 8, 2):
        c.cmd("DELE %d" % (k + 1))
    t0 = time.monotonic()
    assert c.quit().startswith(b"+OK")
    span = max(time.monotonic() - t0, 0.01)  # how long a whole UPDATE takes here
    outcomes = {"old": 0, "new": 0, "+OK": 0, "mid-update": 0}
    tmp = os.path.join(SPOOL, ".%s.gannet-update" % account.name)
    for rnd_i in range(CRASH_ROUNDS):
        account.write_mbox(old)
        dele = sorted(rnd.sample(range(8), rnd.randint(1, 7)))
        c, r = login(srv, account)
        assert r.startswith(b"+OK Logged in, 8 messages"), (rnd_i, r)
        pid = mail_pid_of(srv, c)
        for k in dele:
            assert c.cmd("DELE %d" % (k + 1)).startswith(b"+OK")
        c.send("QUIT\r\n")
        time.sleep(rnd.uniform(0, span * 1.2))
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # UPDATE finished and the process exited first
        got = c.read_available(0.05)
        c.close()
        wait_gone(pid, g.t(10))
        kept = [m for k, m in enumerate(msgs) if k not in dele]
        outcomes["mid-update"] += os.path.exists(tmp)  # killed while writing the new file
        now = split_mbox(account.read_mbox())
        if got.startswith(b"+OK"):
            assert now == kept, rnd_i
            outcomes["+OK"] += 1
        assert now in (msgs, kept), (rnd_i, len(now))
        outcomes["old" if now == msgs else "new"] += 1
        c, r = login(srv, account)
        assert r == b"+OK Logged in, %d messages (%d octets)\r\n" % (
            len(now), sum(len(g.to_wire(m)) for m in now)), (rnd_i, r)
        status, body = c.cmd_multi("UIDL")
        idx = [msgs.index(m) for m in now]
        assert body == b"".join(b"%d %s\r\n" % (n + 1, uidl(i, msgs[i]))
                                for n, i in enumerate(idx)) + b".\r\n"
        assert c.quit().startswith(b"+OK")
        assert not os.path.exists(tmp)
        st = os.stat(account.path)
        assert (st.st_uid, st.st_mode & 0o7777) == (account.uid, 0o660)
    print("crash outcomes:", outcomes)
    assert outcomes["old"] + outcomes["new"] == CRASH_ROUNDS
