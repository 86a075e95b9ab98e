"""A scriptable POP3 server for the gannet client tests.

MiniPop is a small, correct POP3 server (USER/PASS, APOP, AUTH PLAIN/LOGIN, STLS or implicit
TLS, CAPA, STAT, LIST, UIDL, TOP, RETR, DELE, QUIT with UPDATE semantics, PIPELINING). Tests
subclass it and override one cmd_* method, or set a knob, to misbehave in exactly one way. Each
connection runs in its own thread; every command line received is kept in .log, so a test can
check what the client sent (and what it did not send: a PASS after a bad certificate)."""

import base64
import hashlib
import socket
import ssl
import threading
import time

import clienttest as ct
from clienttest import g

APOP_TS = "<1896.697170952@dbc.mtview.ca.us>"


class Closed(Exception):
    pass


class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.tls = False

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def line(self, text):
        self.send(text.encode() + b"\r\n" if isinstance(text, str) else text + b"\r\n")

    def _recv(self):
        """One read into the buffer; False on EOF, error or timeout."""
        try:
            d = self.sock.recv(65536)
        except (OSError, ssl.SSLError):
            d = b""
        self.buf += d
        return bool(d)

    def readline(self, timeout=30):
        self.sock.settimeout(timeout)
        while b"\n" not in self.buf:
            if not self._recv():
                raise Closed()
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r")

    def wait_lines(self, n, timeout=5):
        """Read without answering until N whole lines are queued or TIMEOUT seconds pass.

        Returns the number of lines queued. A client that waits for each reply before the next
        command never gets past the line the caller is answering, so the count stays low."""
        deadline = time.monotonic() + timeout
        while self.buf.count(b"\n") < n:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.sock.settimeout(left)
            if not self._recv():
                break
        return self.buf.count(b"\n")

    def starttls(self, ctx):
        self.sock.settimeout(10)
        self.sock = ctx.wrap_socket(self.sock, server_side=True)
        self.tls = True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def server_ctx(cert, minimum=None, maximum=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert[0], cert[1])
    if minimum is not None or maximum is not None:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        if minimum is not None:
            ctx.minimum_version = minimum
        if maximum is not None:
            ctx.maximum_version = maximum
    return ctx


class Session:
    def __init__(self, conn, box):
        self.conn = conn
        self.authed = False
        self.user = None
        self.snapshot = list(box)  # [(uid, stored bytes)] at login
        self.deleted = set()


class MiniPop:
    capa_extra = ["TOP", "UIDL", "PIPELINING", "RESP-CODES"]
    sasl = ["PLAIN", "LOGIN"]

    def __init__(self, messages=(), uidls=None, mode="none", cert=None, ctx=None, user="u",
                 password="p", greeting="+OK MiniPop ready " + APOP_TS):
        self.box = []
        self.lock = threading.Lock()
        for i, m in enumerate(messages):
            self.box.append((uidls[i] if uidls else "uid-%d" % (i + 1), m))
        self.mode = mode
        self.ctx = ctx or (server_ctx(cert) if cert else None)
        self.user, self.password, self.greeting = user, password, greeting
        self.log = []
        self.errors = []
        self.sessions = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.halt = threading.Event()  # handlers that stall wait on this, so stop() is quick
        self.threads = []
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    # -- plumbing
    def _accept(self):
        while not self.stopping:
            try:
                s, _ = self.sock.accept()
            except OSError:
                return
            th = threading.Thread(target=self._run, args=(s,), daemon=True)
            self.threads.append(th)
            th.start()

    def _run(self, s):
        conn = Conn(s)
        self.sessions += 1
        try:
            if self.mode == "tls":
                conn.starttls(self.ctx)
            self.session(conn)
        except (Closed, OSError, ssl.SSLError):
            pass
        except Exception as e:  # a bug in a test server must fail the test, not hang it
            self.errors.append(repr(e))
        finally:
            conn.close()

    def stop(self):
        self.stopping = True
        self.halt.set()
        self.sock.close()
        for th in self.threads:
            th.join(5)
        assert not self.errors, self.errors

    def commands(self):
        return [ln.split(b" ")[0].upper() for ln in self.log]

    def account(self, **extra):
        s = {"host": "127.0.0.1" if self.mode == "none" else "localhost", "port": self.port,
             "tls": {"none": "none", "tls": "tls", "stls": "starttls"}[self.mode],
             "user": self.user, "password": self.password, "timeout": 5}
        s.update(extra)
        return s

    def stored(self):
        with self.lock:
            return [m for _u, m in self.box]

    # -- the session
    def session(self, conn):
        conn.line(self.greeting)
        sess = Session(conn, [])
        while True:
            line = conn.readline()
            self.log.append(line)
            word, _, arg = line.partition(b" ")
            fn = getattr(self, "cmd_" + word.decode("ascii", "replace").lower(), None)
            if fn is None:
                conn.line("-ERR unknown command")
                continue
            if fn(sess, arg.decode("utf-8", "replace")) == "close":
                return

    def capabilities(self, sess):
        caps = list(self.capa_extra)
        if self.mode == "stls" and not sess.conn.tls:
            caps.append("STLS")
        if self.sasl:
            caps.append("SASL " + " ".join(self.sasl))
        caps.append("USER")
        return caps

    def cmd_capa(self, sess, arg):
        sess.conn.send("+OK\r\n" + "".join(c + "\r\n" for c in self.capabilities(sess)) + ".\r\n")

    def cmd_stls(self, sess, arg):
        sess.conn.line("+OK Begin TLS")
        sess.conn.starttls(self.ctx)

    def login_ok(self, sess, user):
        sess.authed = True
        sess.user = user
        with self.lock:
            sess.snapshot = list(self.box)
        sess.conn.line("+OK logged in")

    def cmd_user(self, sess, arg):
        sess.user = arg
        sess.conn.line("+OK")

    def cmd_pass(self, sess, arg):
        if sess.user == self.user and arg == self.password:
            return self.login_ok(sess, sess.user)
        sess.conn.line("-ERR [AUTH] invalid login")

    def cmd_apop(self, sess, arg):
        user, _, digest = arg.partition(" ")
        want = hashlib.md5((APOP_TS + self.password).encode()).hexdigest()
        if user == self.user and digest == want:
            return self.login_ok(sess, user)
        sess.conn.line("-ERR [AUTH] invalid login")

    def sasl_step(self, sess, challenge):
        sess.conn.line("+ " + challenge)
        line = sess.conn.readline()
        self.log.append(line)
        return line

    def cmd_auth(self, sess, arg):
        mech, _, ir = arg.partition(" ")
        mech = mech.upper()
        if mech == "PLAIN":
            resp = ir if ir else self.sasl_step(sess, "").decode()
            parts = base64.b64decode(resp, validate=True).split(b"\0")
            if parts[1:] == [self.user.encode(), self.password.encode()]:
                return self.login_ok(sess, self.user)
        elif mech == "LOGIN":
            u = base64.b64decode(self.sasl_step(sess, "VXNlcm5hbWU6"))
            p = base64.b64decode(self.sasl_step(sess, "UGFzc3dvcmQ6"))
            if (u, p) == (self.user.encode(), self.password.encode()):
                return self.login_ok(sess, self.user)
        sess.conn.line("-ERR [AUTH] authentication failed")

    def live(self, sess):
        return [(i + 1, u, m) for i, (u, m) in enumerate(sess.snapshot) if i + 1 not in sess.deleted]

    def msg(self, sess, arg):
        try:
            n = int(arg.split()[0])
        except (ValueError, IndexError):
            return None
        if 1 <= n <= len(sess.snapshot) and n not in sess.deleted:
            return n, sess.snapshot[n - 1][0], sess.snapshot[n - 1][1]
        return None

    def cmd_stat(self, sess, arg):
        live = self.live(sess)
        sess.conn.line("+OK %d %d" % (len(live), sum(len(g.to_wire(m)) for _n, _u, m in live)))

    def cmd_list(self, sess, arg):
        if arg:
            m = self.msg(sess, arg)
            return sess.conn.line("+OK %d %d" % (m[0], len(g.to_wire(m[2])))
                                  if m else "-ERR no such message")
        sess.conn.send("+OK\r\n" + "".join("%d %d\r\n" % (n, len(g.to_wire(m)))
                                           for n, _u, m in self.live(sess)) + ".\r\n")

    def cmd_uidl(self, sess, arg):
        if arg:
            m = self.msg(sess, arg)
            return sess.conn.line("+OK %d %s" % (m[0], m[1]) if m else "-ERR no such message")
        sess.conn.send("+OK\r\n" + "".join("%d %s\r\n" % (n, u) for n, u, _m in self.live(sess))
                       + ".\r\n")

    def cmd_retr(self, sess, arg):
        m = self.msg(sess, arg)
        if not m:
            return sess.conn.line("-ERR no such message")
        sess.conn.send(b"+OK message follows\r\n" + g.retr_wire(m[2]))

    def cmd_top(self, sess, arg):
        m = self.msg(sess, arg)
        if not m:
            return sess.conn.line("-ERR no such message")
        sess.conn.send(b"+OK top follows\r\n" + g.top_wire(m[2], int(arg.split()[1])))

    def cmd_dele(self, sess, arg):
        m = self.msg(sess, arg)
        if not m:
            return sess.conn.line("-ERR no such message")
        sess.deleted.add(m[0])
        sess.conn.line("+OK deleted")

    def cmd_noop(self, sess, arg):
        sess.conn.line("+OK")

    def cmd_quit(self, sess, arg):
        if sess.authed and sess.deleted:
            gone = {id(sess.snapshot[n - 1]) for n in sess.deleted}
            with self.lock:
                self.box = [e for e in self.box if id(e) not in gone]
        sess.conn.line("+OK bye")
        return "close"


def wait_until(pred, timeout=10):
    deadline = time.monotonic() + ct.t(timeout)
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return False
