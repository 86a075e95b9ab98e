"""Helpers for the Gannet integration suite: start the real gannetd, deliver mail, talk raw POP3.

Everything here works on exact bytes. The wire-form helpers encode the server contract:
stored bare LF -> CRLF, CRLF kept, a bare CR passes through, a last line without a newline gets
CRLF, every line starting with '.' is stuffed, and a zero-byte file has an empty wire form.
"""

import base64
import crypt
import hashlib
import hmac
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import warnings

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.abspath(os.environ.get("GANNET_BUILD") or os.path.join(REPO, "build"))
GANNETD = os.path.join(BUILD, "gannetd")
GANNETCTL = os.path.join(BUILD, "gannetctl")
ASAN = os.environ.get("GANNET_ASAN") == "1"
# Every timeout in the suite is multiplied by this: ASan builds are several times slower.
MULT = 3.0 if ASAN else 1.0
SAN_MARKERS = ("ERROR: AddressSanitizer", "runtime error:")

CRLF = b"\r\n"


def t(seconds):
    """A timeout scaled for the build under test."""
    return seconds * MULT


def run_env(extra=None):
    """Environment for running gannetd/gannetctl. Under ASan, leak checking at exit is turned off
    unless ASAN_OPTIONS says otherwise: a leak report at exit changes the exit status of
    `gannetd -n` and of every daemon child, and leaks are not among the failures this suite looks
    for (ERROR: AddressSanitizer, runtime error:)."""
    env = dict(os.environ)
    if ASAN:
        opts = env.get("ASAN_OPTIONS", "")
        if "detect_leaks" not in opts:
            env["ASAN_OPTIONS"] = (opts + ":" if opts else "") + "detect_leaks=0"
    env.update(extra or {})
    return env


# ---------------------------------------------------------------------------------------------
# Wire-form helpers


def to_wire(stored: bytes) -> bytes:
    """The CRLF form of a stored message, before dot-stuffing (what LIST counts)."""
    out = re.sub(rb"(?<!\r)\n", b"\r\n", stored)
    if out and not out.endswith(b"\r\n"):
        out += b"\r\n"
    return out


def stuff(wire: bytes) -> bytes:
    """Dot-stuff a CRLF message: every line that starts with '.' gets another '.'."""
    return re.sub(rb"(^|\r\n)\.", rb"\1..", wire)


def unstuff(body: bytes) -> bytes:
    """Undo dot-stuffing of a multi-line body (terminating '.\\r\\n' already removed)."""
    lines = body.split(b"\r\n")
    return b"\r\n".join(ln[1:] if ln.startswith(b".") else ln for ln in lines)


def retr_wire(stored: bytes) -> bytes:
    """The exact bytes of a RETR body, terminator included (status line excluded)."""
    return stuff(to_wire(stored)) + b".\r\n"


def top_wire(stored: bytes, k: int) -> bytes:
    """Exact TOP n k body (terminator included) per the contract: header, blank line, k lines."""
    wire = to_wire(stored)
    if not wire:
        return b".\r\n"
    lines = wire.split(b"\r\n")[:-1]  # wire always ends in CRLF here
    try:
        sep = lines.index(b"")
    except ValueError:
        return stuff(wire) + b".\r\n"  # no blank line: the whole message is header
    kept = lines[: sep + 1 + k]
    return stuff(b"".join(ln + b"\r\n" for ln in kept)) + b".\r\n"


def uidl_for_name(name: str) -> str:
    """The UIDL the contract derives from a Maildir file name."""
    base = name.rsplit(":", 1)[0] if ":" in name else name
    unique = base.split(",", 1)[0]
    if 1 <= len(unique) <= 70 and all(0x21 <= ord(c) <= 0x7E for c in unique):
        return unique
    return "H" + hashlib.sha256(unique.encode("utf-8", "surrogateescape")).hexdigest()[:40]


def multiline_lines(body: bytes):
    """Split a multi-line body (terminator included) into its lines without CRLF."""
    assert body.endswith(b".\r\n"), body[-20:]
    inner = body[:-3]
    if not inner:
        return []
    assert inner.endswith(b"\r\n"), inner[-20:]
    return inner[:-2].split(b"\r\n")


# ---------------------------------------------------------------------------------------------
# Password hashes


def make_hash(password: str, scheme: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if scheme == "PLAIN":
            return "{PLAIN}" + password
        if scheme == "SHA512-CRYPT":
            return "{SHA512-CRYPT}" + crypt.crypt(password, crypt.mksalt(crypt.METHOD_SHA512))
        if scheme == "SHA256-CRYPT":
            return "{SHA256-CRYPT}" + crypt.crypt(password, crypt.mksalt(crypt.METHOD_SHA256))
        if scheme == "BLF-CRYPT":
            salt = crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)
            return "{BLF-CRYPT}" + crypt.crypt(password, salt)
        if scheme == "CRYPT":  # yescrypt through libxcrypt
            abc = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
            salt = "$y$j9T$" + "".join(abc[b % 64] for b in os.urandom(16)) + "$"
            h = crypt.crypt(password, salt)
            assert h and h.startswith("$y$"), h
            return "{CRYPT}" + h
        if scheme == "ARGON2ID":
            out = subprocess.run([GANNETCTL, "pw", "-s", "ARGON2ID", "--password-stdin"],
                                 input=password.encode() + b"\n", capture_output=True,
                                 timeout=t(30), env=run_env())
            assert out.returncode == 0, out
            line = out.stdout.decode().strip()
            assert line.startswith("{ARGON2ID}$argon2id$"), line
            return line
    raise ValueError(scheme)


def scram_verifier(password: str, hashname: str, iterations=4096, salt=None) -> str:
    """The user file's SCRAM verifier "ITER,SALT_B64,STOREDKEY_HEX,SERVERKEY_HEX" (RFC 5802 §3),
    computed here independently of gannetctl."""
    salt = salt if salt is not None else os.urandom(16)
    salted = hashlib.pbkdf2_hmac(hashname, password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashname).digest()
    stored = hashlib.new(hashname, client_key).hexdigest()
    server = hmac.new(salted, b"Server Key", hashname).hexdigest()
    return "%d,%s,%s,%s" % (iterations, base64.b64encode(salt).decode(), stored, server)


# ---------------------------------------------------------------------------------------------
# Raw POP3 connection


class ConnClosed(Exception):
    def __init__(self, partial=b""):
        super().__init__("connection closed by peer; partial=%r" % partial[-200:])
        self.partial = partial


class Pop3Conn:
    """A line-oriented POP3 client that returns exact bytes and never blocks without a bound."""

    def __init__(self, sock, timeout=None, server=None):
        self.sock = sock
        self.timeout = timeout if timeout is not None else t(10)
        self.sock.settimeout(self.timeout)
        self.buf = bytearray()
        self.server = server
        self.greeting = None

    @classmethod
    def open(cls, port, tls_ctx=None, timeout=None, server=None, read_greeting=True,
             host="127.0.0.1"):
        timeout = timeout if timeout is not None else t(10)
        s = socket.create_connection((host, port), timeout=timeout)
        if tls_ctx is not None:
            s = tls_ctx.wrap_socket(s, server_hostname="localhost")
        c = cls(s, timeout, server)
        if read_greeting:
            c.greeting = c.readline()
        return c

    # -- low level
    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self, timeout=None):
        self.sock.settimeout(timeout if timeout is not None else self.timeout)
        try:
            data = self.sock.recv(262144)
        except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError, BrokenPipeError):
            data = b""
        if not data:
            raise ConnClosed(bytes(self.buf))
        self.buf += data

    def readline(self, timeout=None):
        """One line including its LF. Raises ConnClosed or socket.timeout."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[: i + 1])
                del self.buf[: i + 1]
                return line
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("readline timed out; partial=%r" % bytes(self.buf[-200:]))
            self._fill(left)

    def read_multi(self, timeout=None):
        """Bytes of a multi-line body up to and including the terminating '.\\r\\n'."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        pos = 0
        while True:
            if self.buf.startswith(b".\r\n"):
                del self.buf[:3]
                return b".\r\n"
            i = self.buf.find(b"\r\n.\r\n", max(0, pos - 4))
            if i >= 0:
                out = bytes(self.buf[: i + 5])
                del self.buf[: i + 5]
                return out
            pos = len(self.buf)
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("read_multi timed out after %d bytes" % len(self.buf))
            self._fill(left)

    def read_exact(self, n, timeout=None):
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("read_exact timed out")
            self._fill(left)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_available(self, wait=0.3):
        """Whatever arrives within WAIT seconds (plus what is buffered); never raises on EOF."""
        deadline = time.monotonic() + wait
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                self._fill(left)
            except (socket.timeout, ConnClosed, ssl.SSLError, OSError):
                break
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def wait_closed(self, timeout=None):
        """Read until the peer closes; returns the bytes received meanwhile. Raises socket.timeout
        if the connection is still open after TIMEOUT."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("connection still open; got %r" % bytes(self.buf[-200:]))
            try:
                self._fill(left)
            except ConnClosed:
                out = bytes(self.buf)
                self.buf.clear()
                return out
            except socket.timeout:
                continue
            except (ssl.SSLError, OSError):
                out = bytes(self.buf)
                self.buf.clear()
                return out

    # -- POP3 level
    def _note_secret(self, line):
        if self.server is not None and isinstance(line, (str, bytes)):
            b = line.encode() if isinstance(line, str) else line
            if b[:5].upper() == b"PASS " and len(b) >= 13:
                self.server.secrets.add(b[5:].decode("utf-8", "replace"))

    def cmd(self, line, timeout=None):
        """Send LINE + CRLF and return the first reply line (exact bytes)."""
        self._note_secret(line)
        if isinstance(line, str):
            line = line.encode()
        self.send(line + CRLF)
        return self.readline(timeout)

    def cmd_multi(self, line, timeout=None):
        """Send LINE; return (status line, body incl. terminator or None when -ERR)."""
        status = self.cmd(line, timeout)
        if status.startswith(b"+OK"):
            return status, self.read_multi(timeout)
        return status, None

    def retr(self, n, timeout=None):
        status, body = self.cmd_multi("RETR %d" % n, timeout)
        assert status.startswith(b"+OK"), status
        return body

    def login(self, user, password):
        r = self.cmd("USER " + user)
        assert r.startswith(b"+OK"), (user, r)
        r = self.cmd("PASS " + password)
        assert r.startswith(b"+OK"), (user, r)
        return r

    def capa(self):
        status, body = self.cmd_multi("CAPA")
        assert status.startswith(b"+OK"), status
        return [ln.decode() for ln in multiline_lines(body)]

    def starttls(self, ctx, server_hostname="localhost"):
        assert not self.buf, "bytes pending before TLS: %r" % bytes(self.buf)
        self.sock.settimeout(self.timeout)
        self.sock = ctx.wrap_socket(self.sock, server_hostname=server_hostname)

    def quit(self):
        r = self.cmd("QUIT")
        self.close()
        return r

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def reset(self):
        """Abort with a TCP RST (SO_LINGER 0)."""
        raw = self.sock
        if isinstance(raw, ssl.SSLSocket):
            raw = socket.socket(fileno=raw.detach())
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        raw.close()


def client_tls_context(cafile, minimum=None, maximum=None, legacy=False):
    ctx = ssl.create_default_context(cafile=cafile)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if legacy:
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        if minimum is not None:
            ctx.minimum_version = minimum
        if maximum is not None:
            ctx.maximum_version = maximum
    return ctx


# ---------------------------------------------------------------------------------------------
# Maildir


class Maildir:
    _seq = 0

    def __init__(self, root):
        self.root = str(root)
        for d in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(self.root, d), exist_ok=True)

    @classmethod
    def next_seq(cls):
        cls._seq += 1
        return cls._seq

    def deliver(self, data: bytes, name=None, mtime=None, subdir="new", info=None):
        """Write DATA like an MDA: into tmp/, set mtime, rename into new/ (or cur/ with INFO,
        e.g. ':2,S'). Messages delivered later get later mtimes by default, so delivery order
        follows call order. Returns the file name (without directory)."""
        seq = Maildir.next_seq()
        if name is None:
            name = "%d.M%dP%dQ%d.gannet.test" % (1700000000 + seq, seq, os.getpid(), seq)
        if info:
            name += info
        if mtime is None:
            mtime = 1700000000 + seq
        tmp = os.path.join(self.root, "tmp", "deliver.%d" % seq)
        with open(tmp, "wb") as f:
            f.write(data)
        os.utime(tmp, (mtime, mtime))
        os.rename(tmp, os.path.join(self.root, subdir, name))
        return name

    def files(self):
        """{name: (subdir, bytes)} for new/ and cur/."""
        out = {}
        for d in ("new", "cur"):
            p = os.path.join(self.root, d)
            for n in os.listdir(p):
                fp = os.path.join(p, n)
                if os.path.isfile(fp) and not os.path.islink(fp) and not n.startswith("."):
                    with open(fp, "rb") as f:
                        out[n] = (d, f.read())
        return out

    def contents(self):
        """Sorted list of message bodies present."""
        return sorted(v[1] for v in self.files().values())

    def find(self, data):
        return [n for n, (d, b) in self.files().items() if b == data]


# ---------------------------------------------------------------------------------------------
# Process helpers


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _stat_fields(pid):
    with open("/proc/%d/stat" % pid, "rb") as f:
        data = f.read()
    rest = data[data.rindex(b")") + 2:].split()
    return rest  # rest[0] = state, rest[1] = ppid, rest[11]=utime, rest[12]=stime, rest[19]=starttime


def process_tree(root_pid):
    """PIDs of ROOT_PID and all its descendants (live, non-zombie)."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            f = _stat_fields(int(d))
        except (OSError, ValueError):
            continue
        if f[0] == b"Z":
            continue
        children.setdefault(int(f[1]), []).append(int(d))
    out, todo = [], [root_pid]
    while todo:
        p = todo.pop()
        if p != root_pid or os.path.exists("/proc/%d" % p):
            out.append(p)
        todo.extend(children.get(p, []))
    return out


def rss_kb(pids):
    total = 0
    for p in pids:
        try:
            with open("/proc/%d/status" % p) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def cpu_ticks(pids):
    total = 0
    for p in pids:
        try:
            f = _stat_fields(p)
            total += int(f[11]) + int(f[12])
        except (OSError, ValueError, IndexError):
            pass
    return total


def proc_identity(pid):
    try:
        f = _stat_fields(pid)
        return None if f[0] == b"Z" else f[19]
    except (OSError, IndexError):
        return None


# ---------------------------------------------------------------------------------------------
# The server under test

DEFAULTS = {
    "isolation": "shared",
    "login_processes": "2",
    "mail_processes": "2",
    "trusted_networks": "127.0.0.0/8 ::1/128",
    "disable_plaintext_auth": "yes",
    "hostname": "gannet.test",
    "log_level": "debug",
    "shutdown_grace": "1",
    "max_sessions": "2000",
}


class GannetServer:
    """One gannetd instance with its own config, users file, maildirs and ports."""

    def __init__(self, base, cert=None, settings=None):
        self.base = str(base)
        os.makedirs(self.base, exist_ok=True)
        self.cert = cert  # (cert_path, key_path) or None for no TLS
        # state_dir lives under a short path: unix socket names are limited to 108 bytes.
        self.state_dir = tempfile.mkdtemp(prefix="gn-", dir="/tmp")
        self.conf_path = os.path.join(self.base, "gannetd.conf")
        self.userdb = os.path.join(self.base, "users")
        self.log_path = os.path.join(self.base, "gannetd.log")
        self.auth_dir = os.path.join(self.base, "auth")  # app passwords, TOTP, APOP secrets
        self.port = free_port()
        self.tls_port = free_port() if cert else None
        self.extra_ports = []  # more plain listeners on the same `listen` line
        self.settings = dict(DEFAULTS)
        self.settings.update(settings or {})
        if self.settings.get("isolation") == "per-connection":
            for k in ("login_processes", "mail_processes"):
                if k not in (settings or {}):
                    self.settings.pop(k, None)
        self.users = {}  # name -> (password, home)
        self.extra = {}  # name -> the user file's extra field (SCRAM verifiers)
        self.secrets = set()
        self.proc = None
        self.problems = []
        self.expect_exit = False
        self.known_pids = {}
        self.conf_lines = {}

    # -- setup
    def add_user(self, name, password=None, scheme="PLAIN", home=None, make_maildir=True,
                 write=True, scram=False):
        if password is None:
            password = "Pw-%s-%s" % (name, os.urandom(4).hex())
        if home is None:
            home = os.path.join(self.base, "home", name)
        if make_maildir:
            Maildir(os.path.join(home, "Maildir"))
        self.users[name] = (password, home, make_hash(password, scheme))
        if scram:
            self.extra[name] = "scram-sha-1=%s scram-sha-256=%s" % (
                scram_verifier(password, "sha1"), scram_verifier(password, "sha256"))
        self.secrets.add(password)
        if write:
            self.write_users()
        return password

    def write_users(self):
        with open(self.userdb, "w", encoding="utf-8") as f:  # UTF-8 names (RFC 6856)
            for name, (_pw, home, h) in self.users.items():
                f.write("%s:%s::::%s::%s\n" % (name, h, home, self.extra.get(name, "")))
        os.chmod(self.userdb, 0o600)

    def password(self, user):
        return self.users[user][0]

    def maildir(self, user):
        return Maildir(os.path.join(self.users[user][1], "Maildir"))

    def config_text(self, extra_lines=()):
        s = dict(self.settings)
        lines = ["# gannetd test configuration",
                 "listen = " + " ".join("127.0.0.1:%d" % p for p in [self.port] + self.extra_ports)]
        if self.cert:
            lines += ["listen_tls = 127.0.0.1:%d" % self.tls_port,
                      "tls_cert = %s" % self.cert[0], "tls_key = %s" % self.cert[1]]
        lines += ["userdb = %s" % self.userdb, "mail_location = %h/Maildir",
                  "state_dir = %s" % self.state_dir, "auth_dir = %s" % self.auth_dir]
        for k, v in s.items():
            if v is None:
                continue
            lines.append("%s = %s" % (k, v) if v != "" else "%s =" % k)
        lines += list(extra_lines)
        return "\n".join(lines) + "\n"

    def write_config(self, text=None):
        text = text if text is not None else self.config_text()
        with open(self.conf_path, "w") as f:
            f.write(text)
        self.conf_lines = {}
        for i, ln in enumerate(text.splitlines(), 1):
            if "=" in ln and not ln.lstrip().startswith("#"):
                self.conf_lines[ln.split("=", 1)[0].strip()] = i

    # -- run
    def start(self, wait=True):
        assert self.proc is None, "server already started"
        if not os.path.exists(self.userdb):
            self.write_users()
        self.write_config()
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([GANNETD, "-d", "-c", self.conf_path], stdin=subprocess.DEVNULL,
                                     stdout=self.logf, stderr=self.logf, cwd=self.base,
                                     start_new_session=True, env=run_env())
        if wait:
            self.wait_ready()
        return self

    def ports(self):
        return [self.port] + self.extra_ports + ([self.tls_port] if self.tls_port else [])

    def wait_ready(self, timeout=None):
        deadline = time.monotonic() + (timeout or t(10))
        pending = set(self.ports())
        while pending:
            if self.proc.poll() is not None:
                raise AssertionError("gannetd exited with %s during start-up; log:\n%s"
                                     % (self.proc.returncode, self.log_tail()))
            for p in list(pending):
                try:
                    socket.create_connection(("127.0.0.1", p), timeout=0.5).close()
                    pending.discard(p)
                except OSError:
                    pass
            if pending:
                if time.monotonic() > deadline:
                    raise AssertionError("gannetd not accepting on %s after %.0fs; log:\n%s"
                                         % (sorted(pending), timeout or t(10), self.log_tail()))
                time.sleep(0.05)
        self.remember_pids()

    def remember_pids(self):
        if self.proc and self.proc.poll() is None:
            for p in process_tree(self.proc.pid):
                ident = proc_identity(p)
                if ident is not None:
                    self.known_pids[p] = ident

    def pids(self):
        if self.proc is None or self.proc.poll() is not None:
            return []
        return process_tree(self.proc.pid)

    def rss_kb(self):
        return rss_kb(self.pids())

    def signal(self, sig):
        self.remember_pids()
        os.kill(self.proc.pid, sig)

    def reload(self):
        self.signal(signal.SIGHUP)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, n=60):
        return "\n".join(self.log_text().splitlines()[-n:])

    def stop(self, timeout=None):
        """SIGTERM by PID, SIGKILL after a bound. Returns the exit code (None if killed)."""
        if self.proc is None:
            return None
        grace = float(self.settings.get("shutdown_grace") or 30)
        timeout = timeout if timeout is not None else grace + t(10)
        if self.proc.poll() is None:
            self.remember_pids()
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.problems.append("gannetd did not exit within %.0fs of SIGTERM" % timeout)
                self._kill_known()
                self.proc.wait(5)
        self._reap_children()
        return self.proc.returncode

    def _kill_known(self):
        for p, ident in self.known_pids.items():
            if proc_identity(p) == ident:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def _reap_children(self):
        deadline = time.monotonic() + t(5)
        while True:
            left = [p for p, ident in self.known_pids.items()
                    if p != self.proc.pid and proc_identity(p) == ident]
            if not left:
                return
            if time.monotonic() > deadline:
                self.problems.append("gannetd child processes %s still running after the master "
                                     "exited" % left)
                self._kill_known()
                return
            time.sleep(0.05)

    def finish(self):
        """Stop the server and return a list of contract violations seen over its lifetime."""
        if self.proc is not None:
            if self.proc.poll() is not None and not self.expect_exit:
                self.problems.append("gannetd exited unexpectedly with status %s"
                                     % self.proc.returncode)
            self.stop()
            try:
                self.logf.close()
            except Exception:
                pass
        log = self.log_text()
        for m in SAN_MARKERS:
            if m in log:
                self.problems.append("sanitizer report in the gannetd log: %r" % m)
        for pw in sorted(self.secrets):
            if pw and pw in log:
                self.problems.append("a password (%r) appears in the gannetd log" % pw)
        shutil.rmtree(self.state_dir, ignore_errors=True)
        return self.problems

    # -- clients
    def connect(self, tls=False, ctx=None, port=None, read_greeting=True, timeout=None):
        if tls:
            ctx = ctx or client_tls_context(self.cert[0])
            return Pop3Conn.open(port or self.tls_port, ctx, timeout=timeout, server=self,
                                 read_greeting=read_greeting)
        return Pop3Conn.open(port or self.port, None, timeout=timeout, server=self,
                             read_greeting=read_greeting)

    def tls_context(self, **kw):
        return client_tls_context(self.cert[0], **kw)

    def login(self, user, tls=False):
        c = self.connect(tls=tls)
        assert c.greeting.startswith(b"+OK"), c.greeting
        c.login(user, self.password(user))
        return c

    def relogin(self, user, tls=False, within=3.0):
        """Log in after a session of USER was dropped without QUIT: the lock may take a moment
        to go (S-077), so retry on [IN-USE] for at most WITHIN seconds (scaled)."""
        deadline = time.monotonic() + t(within)
        while True:
            c = self.connect(tls=tls)
            c.cmd("USER " + user)
            r = c.cmd("PASS " + self.password(user))
            if r.startswith(b"+OK"):
                return c
            assert r.startswith(b"-ERR [IN-USE]"), (user, r)
            c.close()
            assert time.monotonic() < deadline, "lock of %s still held after %.0fs" % (
                user, t(within))
            time.sleep(0.1)

    def stat(self, user):
        """(count, size) seen by a fresh session, ended with QUIT (nothing deleted). Used after
        dropped sessions too, so it waits for a lingering lock."""
        c = self.relogin(user)
        r = c.cmd("STAT")
        c.quit()
        m = re.match(rb"^\+OK (\d+) (\d+)\r\n$", r)
        assert m, r
        return int(m.group(1)), int(m.group(2))


# ---------------------------------------------------------------------------------------------
# Message corpus


def header(subject, extra=b""):
    return (b"From: Alice <alice@example.org>\nTo: bob@example.org\nSubject: " + subject.encode()
            + b"\nMessage-ID: <" + subject.encode() + b"@gannet.test>\nDate: Tue, 14 Nov 2023 "
            b"22:13:20 +0000\n" + extra + b"\n")


def big_message(size, seed=1, subject="big"):
    """A deterministic LF-stored message of about SIZE bytes with dot lines sprinkled in."""
    import random
    rnd = random.Random(seed)
    parts = [header(subject)]
    n = len(parts[0])
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 .-"
    pool = "".join(rnd.choices(alphabet, k=65536)).encode()
    i = 0
    while n < size:
        i += 1
        start = rnd.randrange(0, len(pool) - 91)
        line = pool[start:start + rnd.randint(0, 90)]
        if i % 97 == 0:
            line = b"." + line
        if i % 1013 == 0:
            line = b"."
        parts.append(line + b"\n")
        n += len(line) + 1
    return b"".join(parts)


def varied_messages():
    """The varied maildrop, in delivery order: (label, stored bytes)."""
    return [
        ("dots", header("dots") + b".\n..\n...\n.foo\n. \n.\r\nend\n"),
        ("first-line-dot", b".starts with a dot\nSubject: odd\n\nbody\n"),
        ("no-final-newline", header("no-final-newline") + b"line one\nlast line without newline"),
        ("utf8", header("utf8", b"Content-Type: text/plain; charset=utf-8\n"
                        b"Content-Transfer-Encoding: 8bit\n")
         + "Grüße aus Köln, 日本語のテキスト, ✓ and 🐦\nÆØÅ æøå\n".encode()),
        ("long-line", header("long-line") + b"y" * 2000 + b"\nshort\n"),
        ("empty-body", header("empty-body")),
        ("zero-byte", b""),
        ("crlf", header("crlf").replace(b"\n", b"\r\n") + b"stored\r\nwith CRLF\r\n.\r\n"),
        ("mixed", header("mixed") + b"a\r\nb\nc\r\n.d\n"),
        ("bare-cr", header("bare-cr") + b"x\ry\nold mac\rline\n"),
        ("big-2mb", big_message(2 * 1024 * 1024, seed=7, subject="big-2mb")),
    ]
