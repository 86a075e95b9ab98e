"""STLS and implicit TLS: S-078..S-080, S-082..S-086, edge 24."""

import re
import socket
import ssl
import threading
import time

import pytest

import gannettest as g


def stls(c, srv):
    r = c.cmd("STLS")
    assert r.startswith(b"+OK"), r
    c.starttls(srv.tls_context())
    return c


@pytest.mark.parametrize("isolation", ["shared", "per-connection"])
def test_s079_stls_handshake_then_login(server):
    """S-079: TLS starts right after the +OK line; then CAPA has no STLS (S-083), login works."""
    server.maildir("alice").deliver(g.header("tls") + b"secret body\n")
    c = server.connect()
    r = c.cmd("STLS")
    assert r.startswith(b"+OK") and r.endswith(b"\r\n"), r
    assert not c.buf                      # nothing after the +OK line before the ServerHello
    c.starttls(server.tls_context())
    assert c.sock.version() in ("TLSv1.2", "TLSv1.3")
    caps = c.capa()
    assert "STLS" not in caps and "USER" in caps
    c.login("alice", server.password("alice"))
    assert c.retr(1) == g.retr_wire(g.header("tls") + b"secret body\n")
    assert c.quit().startswith(b"+OK")


def test_s080_stls_twice_refused(server):
    c = stls(server.connect(), server)
    assert c.cmd("STLS").startswith(b"-ERR")
    c.login("alice", server.password("alice"))


def test_s080_stls_on_implicit_tls_port_refused(server):
    c = server.connect(tls=True)
    assert c.cmd("STLS").startswith(b"-ERR")
    c.login("alice", server.password("alice"))
    assert c.cmd("STAT") == b"+OK 0 0\r\n"


def test_s078_stls_after_login_refused(server):
    c = server.login("alice")
    assert c.cmd("STLS").startswith(b"-ERR")
    assert c.cmd("STAT") == b"+OK 0 0\r\n"
    assert c.read_available(0.1) == b""


def test_s082_pipelined_bytes_after_stls_are_not_executed(server):
    """S-082: 'STLS\\r\\nCAPA\\r\\n' in one write -> no CAPA reply ever appears inside TLS; the
    server closes the connection."""
    c = server.connect()
    c.send(b"STLS\r\nCAPA\r\n")
    try:
        r = c.readline()
    except g.ConnClosed as e:
        assert b"+OK" not in e.partial
        return
    if not r.startswith(b"+OK"):
        # refusing STLS outright is also safe, as long as CAPA is not answered and we are cut off
        assert r.startswith(b"-ERR"), r
        got = c.wait_closed(g.t(5))
        assert not got.startswith(b"+OK"), got
        return
    leftover = bytes(c.buf)
    assert not leftover.startswith(b"+OK"), leftover   # CAPA was not answered in the clear
    c.buf.clear()
    try:
        c.starttls(server.tls_context())
    except (ssl.SSLError, OSError):
        return  # handshake refused: fine
    try:
        got = c.wait_closed(g.t(5))
    except socket.timeout:
        pytest.fail("connection still open after pipelined STLS+CAPA")
    assert b"+OK" not in got, got


def test_s082_edge24_user_before_stls_forgotten(server):
    """S-082/edge 24: USER given in the clear is forgotten after STLS: PASS -> -ERR."""
    c = server.connect()
    assert c.cmd("USER alice").startswith(b"+OK")
    stls(c, server)
    assert c.cmd("PASS " + server.password("alice")).startswith(b"-ERR")
    c.login("alice", server.password("alice"))


def _legacy_tls_possible():
    """Check that this Python/OpenSSL can still speak TLS 1.1 at all (else the test is void)."""
    import tempfile, subprocess, os
    d = tempfile.mkdtemp()
    cert, key = os.path.join(d, "c.pem"), os.path.join(d, "k.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "1", "-subj", "/CN=localhost"], check=True,
                   capture_output=True)
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(cert, key)
    sctx.minimum_version = ssl.TLSVersion.TLSv1
    sctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    result = {}

    def serve():
        conn, _ = ls.accept()
        try:
            with sctx.wrap_socket(conn, server_side=True) as s:
                result["v"] = s.version()
        except Exception as e:  # noqa: BLE001
            result["e"] = e
    th = threading.Thread(target=serve)
    th.start()
    ctx = legacy_ctx(cert)
    try:
        with ctx.wrap_socket(socket.create_connection(ls.getsockname(), timeout=5),
                             server_hostname="localhost"):
            pass
    except Exception:  # noqa: BLE001
        pass
    th.join(5)
    ls.close()
    return result.get("v") == "TLSv1.1"


def legacy_ctx(cafile):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    return ctx


@pytest.fixture(scope="module")
def legacy_ok():
    if not _legacy_tls_possible():
        pytest.skip("this OpenSSL cannot speak TLS 1.1 even with SECLEVEL=0: test would be void")


def test_s084_s086_tls11_refused_implicit(server, legacy_ok):
    """S-084/S-086: a client limited to TLS 1.0/1.1 cannot complete a handshake on listen_tls."""
    with pytest.raises((ssl.SSLError, OSError)):
        s = socket.create_connection(("127.0.0.1", server.tls_port), timeout=g.t(5))
        legacy_ctx(server.cert[0]).wrap_socket(s, server_hostname="localhost").recv(100)


def test_s084_tls11_refused_after_stls(server, legacy_ok):
    c = server.connect()
    assert c.cmd("STLS").startswith(b"+OK")
    with pytest.raises((ssl.SSLError, OSError)):
        c.starttls(legacy_ctx(server.cert[0]))
        c.sock.recv(100)


@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
def test_s086_tls12_and_13_accepted(server, version):
    v = getattr(ssl.TLSVersion, version)
    ctx = server.tls_context(minimum=v, maximum=v)
    c = server.connect(tls=True, ctx=ctx)
    assert c.sock.version() == version.replace("_", ".")
    c.login("alice", server.password("alice"))


def test_tls_min_version_13(gannet):
    """tls_min_version = TLSv1.3 refuses a TLS 1.2-only client and accepts TLS 1.3."""
    srv = gannet(tls_min_version="TLSv1.3")
    ctx = srv.tls_context(maximum=ssl.TLSVersion.TLSv1_2)
    with pytest.raises((ssl.SSLError, OSError)):
        srv.connect(tls=True, ctx=ctx)
    c = srv.connect(tls=True)
    assert c.sock.version() == "TLSv1.3"


def test_s086_certificate_verifies_for_localhost_and_ip(server):
    """S-086: the configured chain is presented; it verifies for 'localhost' and 127.0.0.1."""
    ctx = server.tls_context()
    for name in ("localhost", "127.0.0.1"):
        s = socket.create_connection(("127.0.0.1", server.tls_port), timeout=g.t(5))
        with ctx.wrap_socket(s, server_hostname=name) as ts:
            cert = ts.getpeercert()
            assert ("DNS", "localhost") in cert["subjectAltName"]


def test_s085_plaintext_on_tls_port_gets_no_pop3_reply(server):
    """S-085: a plaintext CAPA on the implicit-TLS port never gets a POP3 reply."""
    s = socket.create_connection(("127.0.0.1", server.tls_port), timeout=g.t(5))
    s.sendall(b"CAPA\r\n")
    got = b""
    try:
        while len(got) < 4096:
            d = s.recv(4096)
            if not d:
                break
            got += d
    except (socket.timeout, ConnectionResetError):
        pass
    assert b"+OK" not in got and b"-ERR" not in got, got[:200]
    s.close()
    c = server.login("alice", tls=True)
    assert c.cmd("STAT") == b"+OK 0 0\r\n"


def test_tls_session_drop_no_update(server):
    """S-088/S-072: DELE inside TLS, then the TCP connection dies -> nothing deleted."""
    server.maildir("alice").deliver(g.header("keep") + b"x\n")
    c = server.login("alice", tls=True)
    assert c.cmd("DELE 1").startswith(b"+OK")
    c.reset()
    import time
    time.sleep(0.3)
    assert len(server.maildir("alice").contents()) == 1


def _tls_open(srv, ctx, session=None):
    """An implicit-TLS connection offering SESSION; returns (Pop3Conn, ssl socket)."""
    s = socket.create_connection(("127.0.0.1", srv.tls_port), timeout=g.t(10))
    ws = ctx.wrap_socket(s, server_hostname="localhost", session=session)
    c = g.Pop3Conn(ws, server=srv)
    c.greeting = c.readline()    # the TLS 1.3 ticket came before it, so ws.session has it now
    assert c.greeting.startswith(b"+OK"), c.greeting
    return c, ws


def _login_pids_of_tls_events(srv):
    return set(re.findall(r"gannetd/login\[(\d+)\]: session=\S+ ip=\S+ event=tls ",
                          srv.log_text()))


@pytest.mark.parametrize("isolation", ["shared", "per-connection"])
def test_tls_ticket_resumes_in_any_login_process(server):
    """One session ticket key for all login processes of a generation (lib/tls.h): a ticket
    issued by one login process resumes in another. Each connection stays open while the next
    is made, so the master's least-loaded choice (shared) or a fresh process (per-connection)
    serves it elsewhere; every resumed connection still logs in."""
    ctx = server.tls_context()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    conns = []
    c, ws = _tls_open(server, ctx)
    assert not ws.session_reused
    conns.append(c)
    for _ in range(3):
        c, ws = _tls_open(server, ctx, session=ws.session)
        assert ws.session_reused, "ticket of another login process not accepted"
        conns.append(c)
    assert len(_login_pids_of_tls_events(server)) >= 2, server.log_tail()
    for c in conns:
        c.login("alice", server.password("alice")) if c is conns[-1] else c.close()
    assert conns[-1].cmd("STAT") == b"+OK 0 0\r\n"
    assert conns[-1].quit().startswith(b"+OK")


def test_tls_ticket_key_changes_with_reload(server):
    """A reload makes a new ticket key: tickets issued before it no longer resume (and the
    connection falls back to a full handshake, nothing fails)."""
    ctx = server.tls_context()
    c, ws = _tls_open(server, ctx)
    old = ws.session
    c.close()
    c, ws = _tls_open(server, ctx, session=old)
    assert ws.session_reused
    c.close()
    server.reload()
    deadline = time.monotonic() + g.t(10)
    while "event=reloaded" not in server.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "event=reloaded" in server.log_text(), server.log_tail()
    c, ws = _tls_open(server, ctx, session=old)
    assert not ws.session_reused
    c.login("alice", server.password("alice"))
    assert c.quit().startswith(b"+OK")
