"""The real Dovecot (Debian's dovecot-pop3d) as a test server, shared by the server suite
(test_dovecot_uidl.py) and the fetch-client suite (tests/client/test_dovecot.py).

One standalone `dovecot -F -c CONF` per instance: a generated configuration, its own base_dir and
state_dir, a passwd-file passdb and userdb (a users file written here, or the very file a
gannetd instance reads), a plain listener on a free loopback port and, given a certificate, an
implicit-TLS listener plus STLS on the plain one. Stopped by PID with bounded waits; any child
left behind (same PID and start time as recorded) gets SIGKILL.

Dovecot drops to the mail owner: as root that is `nobody` (homes are chowned to it, under a 0755
directory of their own because pytest's tmp_path is 0700); otherwise Dovecot runs as the current
user with no privilege change.

The instance looks enough like gannettest.GannetServer (port, tls_port, ports(), password(),
maildir(), stat()) for the client suite's account_for() and crash loop to take either.
"""

import grp
import os
import poplib
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import gannettest as g

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
DOVEADM = shutil.which("doveadm") or "/usr/bin/doveadm"


def need_dovecot():
    """Fail (not skip) with the install line when Dovecot is missing: the suite depends on it."""
    import pytest
    if not os.access(DOVECOT, os.X_OK):
        pytest.fail("dovecot is not installed: apt-get install dovecot-pop3d "
                    "(scripts/deps.sh installs it with the test packages)")


def mail_owner():
    """The pwd entry Dovecot's mail processes run as: nobody as root, else ourselves."""
    return pwd.getpwnam("nobody") if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())


def make_top(prefix="gn-dc-"):
    """A fresh 0755 directory under /tmp that Dovecot's unprivileged processes can enter."""
    top = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    os.chmod(top, 0o755)
    return top


def chown_tree(root, owner):
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            os.lchown(os.path.join(d, n), owner.pw_uid, owner.pw_gid)
    os.lchown(root, owner.pw_uid, owner.pw_gid)


def doveadm_pw(password, scheme):
    """`doveadm pw -s SCHEME -p PASSWORD`: a hash Dovecot itself made (e.g. {SCRAM-SHA-256})."""
    out = subprocess.run([DOVEADM, "pw", "-s", scheme, "-p", password], capture_output=True,
                         timeout=g.t(30))
    line = out.stdout.decode().strip()
    if out.returncode != 0 or not line.startswith("{%s}" % scheme):
        raise AssertionError("doveadm pw -s %s failed: %r" % (scheme, out))
    return line


class OwnedMaildir(g.Maildir):
    """A Maildir that Dovecot's mail processes (the owner) may rename in and delete from.
    CHOWN: give the whole existing tree to the owner first (once, when it is made)."""

    def __init__(self, root, owner, chown=True):
        super().__init__(root)
        self.owner = owner
        if chown:
            chown_tree(self.root, owner)

    def deliver(self, data, name=None, mtime=None, subdir="new", info=None):
        n = super().deliver(data, name=name, mtime=mtime, subdir=subdir, info=info)
        os.lchown(os.path.join(self.root, subdir, n), self.owner.pw_uid, self.owner.pw_gid)
        return n


class Dovecot:
    """One standalone Dovecot with its own config and base_dir under BASE (a 0755 directory).

    USERS_FILE: a passwd-file to read (e.g. a gannetd users file; its {PLAIN} prefixes are
    Dovecot's too); None means BASE/users, filled with add_user(). CERT: (cert, key) for
    `ssl = yes` (STLS on the plain port) and an implicit-TLS listener on tls_port."""

    def __init__(self, base, users_file=None, owner=None, uidl_format="%08Xu%08Xv",
                 reuse_xuidl=False, cert=None, auth_mechanisms="plain",
                 disable_plaintext_auth=False, extra_conf=()):
        self.base = str(base)
        self.dir = os.path.join(self.base, "dovecot")
        os.makedirs(self.dir, exist_ok=True)
        self.own_users = users_file is None
        self.users_file = users_file or os.path.join(self.base, "users")
        self.owner = owner or mail_owner()
        self.uidl_format = uidl_format
        self.reuse_xuidl = reuse_xuidl
        self.cert = cert
        self.auth_mechanisms = auth_mechanisms
        self.disable_plaintext_auth = disable_plaintext_auth
        self.extra_conf = list(extra_conf)
        self.port = g.free_port()
        self.tls_port = g.free_port() if cert else None
        self.conf = os.path.join(self.dir, "dovecot.conf")
        self.log = os.path.join(self.dir, "dovecot.log")
        self.proc = None
        self.errf = None
        self.known = {}
        self.users = {}  # name -> (password, home, passwd-file password field)

    # -- users (only when the users file is ours)
    def add_user(self, name, password=None, scheme="PLAIN"):
        """A user with a Maildir under BASE/home/NAME; SCHEME PLAIN or any `doveadm pw -s`
        scheme (SCRAM-SHA-256 ...). Returns the password."""
        assert self.own_users, "the users file belongs to someone else"
        if password is None:
            password = "Pw-dc-%s-%s" % (name, os.urandom(4).hex())
        home = os.path.join(self.base, "home", name)
        os.makedirs(home, exist_ok=True)
        OwnedMaildir(os.path.join(home, "Maildir"), self.owner)
        field = "{PLAIN}" + password if scheme == "PLAIN" else doveadm_pw(password, scheme)
        self.users[name] = (password, home, field)
        with open(self.users_file, "w") as f:
            for n, (_pw, h, fld) in self.users.items():
                f.write("%s:%s::::%s::\n" % (n, fld, h))
        os.chmod(self.users_file, 0o644)  # read by Dovecot's auth process (user dovecot)
        return password

    def password(self, user):
        return self.users[user][0]

    def maildir(self, user):
        return OwnedMaildir(os.path.join(self.users[user][1], "Maildir"), self.owner, chown=False)

    def ports(self):
        return [self.port] + ([self.tls_port] if self.tls_port else [])

    # -- configuration
    def config_text(self):
        o = self.owner
        lines = [
            "# written by tests/integration/dovecotsrv.py",
            "base_dir = %s/run" % self.dir,
            "state_dir = %s/state" % self.dir,
            "log_path = %s" % self.log,
            "protocols = pop3",
            "listen = 127.0.0.1",
            "disable_plaintext_auth = %s" % ("yes" if self.disable_plaintext_auth else "no"),
            "auth_mechanisms = %s" % self.auth_mechanisms,
            "mail_location = maildir:~/Maildir",
            "first_valid_uid = %d" % o.pw_uid,
            "first_valid_gid = %d" % o.pw_gid,
            "pop3_uidl_format = %s" % self.uidl_format,
            "pop3_reuse_xuidl = %s" % ("yes" if self.reuse_xuidl else "no"),
        ]
        if self.cert:
            lines += ["ssl = yes", "ssl_cert = <%s" % self.cert[0], "ssl_key = <%s" % self.cert[1],
                      "ssl_min_protocol = TLSv1.2"]
        else:
            lines += ["ssl = no"]
        lines += [
            "passdb {", "  driver = passwd-file",
            "  args = scheme=PLAIN %s" % self.users_file, "}",
            "userdb {", "  driver = passwd-file", "  args = %s" % self.users_file,
            "  default_fields = uid=%d gid=%d" % (o.pw_uid, o.pw_gid), "}",
            "service pop3-login {",
            "  inet_listener pop3 {", "    address = 127.0.0.1",
            "    port = %d" % self.port, "  }",
        ]
        if self.tls_port:
            lines += ["  inet_listener pop3s {", "    address = 127.0.0.1",
                      "    port = %d" % self.tls_port, "    ssl = yes", "  }"]
        if os.geteuid() != 0:
            # Without root nothing can change user or chroot: every service runs as us.
            # (Checked by hand under runuser -u nobody; the suite itself runs as root.)
            me = pwd.getpwuid(os.geteuid())
            lines += ["  chroot =", "}", "service anvil {", "  chroot =", "}",
                      "default_internal_user = %s" % me.pw_name,
                      "default_login_user = %s" % me.pw_name,
                      "default_internal_group = %s" % grp.getgrgid(os.getegid()).gr_name]
        else:
            lines += ["}"]
        lines += self.extra_conf
        return "\n".join(lines) + "\n"

    # -- run
    def start(self):
        assert self.proc is None, "dovecot already started"
        with open(self.conf, "w") as f:
            f.write(self.config_text())
        self.errf = open(os.path.join(self.dir, "stderr.log"), "ab")
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", self.conf], stdin=subprocess.DEVNULL,
                                     stdout=self.errf, stderr=self.errf, start_new_session=True)
        deadline = time.monotonic() + g.t(20)
        pending = set(self.ports())
        while pending:
            if self.proc.poll() is not None:
                raise AssertionError("dovecot exited with %s during start-up:\n%s"
                                     % (self.proc.returncode, self.log_text()))
            for p in list(pending):
                try:
                    socket.create_connection(("127.0.0.1", p), timeout=0.5).close()
                    pending.discard(p)
                except OSError:
                    pass
            if pending:
                if time.monotonic() > deadline:
                    raise AssertionError("dovecot not listening on %s:\n%s"
                                         % (sorted(pending), self.log_text()))
                time.sleep(0.05)
        self._remember()
        return self

    def _remember(self):
        if self.proc is not None and self.proc.poll() is None:
            for p in g.process_tree(self.proc.pid):
                ident = g.proc_identity(p)
                if ident is not None:
                    self.known[p] = ident

    def log_text(self, limit=6000):
        out = ""
        for p in (self.log, os.path.join(self.dir, "stderr.log")):
            try:
                with open(p, "rb") as f:
                    out += f.read().decode("utf-8", "replace")[-limit:]
            except OSError:
                pass
        return out

    def stop(self):
        """SIGTERM to the master by PID, SIGKILL after a bound; then any child it left behind
        (same PID and start time as recorded) gets SIGKILL too. Returns leftover PIDs."""
        if self.proc is None:
            return []
        self._remember()
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(g.t(15))
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(g.t(5))
        deadline = time.monotonic() + g.t(5)
        left = []
        while True:
            left = [p for p, i in self.known.items() if g.proc_identity(p) == i]
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        for p in left:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.errf:
            self.errf.close()
        self.proc = None
        return left

    # -- a client's view
    def stat(self, user):
        """(count, size) from a fresh plaintext session (loopback), ended with QUIT."""
        box = poplib.POP3("127.0.0.1", self.port, timeout=g.t(10))
        try:
            box.user(user)
            box.pass_(self.password(user))
            count, size = box.stat()
        finally:
            box.quit()
        return count, size

    def capabilities(self):
        """CAPA of the plain port before login: {NAME: [args]} (poplib)."""
        box = poplib.POP3("127.0.0.1", self.port, timeout=g.t(10))
        try:
            return box.capa()
        finally:
            box.quit()

