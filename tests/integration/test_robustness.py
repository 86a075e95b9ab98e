"""Hostile and broken clients: silent clients, stalled readers, drops around QUIT, RST storms.

S-006, S-045, S-057, S-070, S-072, S-076 (partly); edge cases 17, 21.
"""

import hashlib
import socket
import time

import pytest

import gannettest as g


@pytest.mark.parametrize("isolation", ["shared", "per-connection"])
def test_silent_clients_do_not_block_others(server):
    """Clients that connect and never speak (plain, TLS without a handshake, half a command) do
    not stop the server from serving others."""
    server.maildir("bob").deliver(g.header("hi") + b"hello\n")
    silent = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(20)]
    silent += [socket.create_connection(("127.0.0.1", server.tls_port)) for _ in range(20)]
    half = server.connect()
    half.send(b"US")
    t0 = time.monotonic()
    c = server.login("bob")
    assert c.cmd("STAT").startswith(b"+OK 1 ")
    assert c.retr(1) == g.retr_wire(g.header("hi") + b"hello\n")
    assert c.quit().startswith(b"+OK")
    c = server.login("bob", tls=True)
    assert c.cmd("STAT").startswith(b"+OK 1 ")
    assert time.monotonic() - t0 < g.t(5)
    half.send(b"ER alice\r\n")
    assert half.readline().startswith(b"+OK")
    for s in silent:
        s.close()


@pytest.mark.parametrize("isolation", ["shared", "per-connection"])
def test_rst_storm(server):
    """Many connections reset right away (before and after the greeting, in TLS) leave the
    server working."""
    for i in range(100):
        tls = i % 3 == 0
        s = socket.create_connection(("127.0.0.1", server.tls_port if tls else server.port))
        if i % 2 and not tls:   # wait for the greeting before resetting
            s.settimeout(g.t(5))
            try:
                s.recv(10)
            except OSError:
                pass
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()
    c = server.login("alice")
    assert c.cmd("STAT") == b"+OK 0 0\r\n"


@pytest.mark.parametrize("mode", ["close", "rst"])
@pytest.mark.parametrize("isolation", ["shared", "per-connection"])
def test_edge21_drop_right_after_quit_with_deles(server, mode):
    """Edge 21/S-070: DELE 1, DELE 3, DELE 5 and QUIT in one write, then the client vanishes.
    Undeleted messages must all survive; deleted ones may or may not be gone."""
    msgs = [g.header("drop%d" % i) + b"body %d\n" % i for i in range(8)]
    md = server.maildir("alice")
    for m in msgs:
        md.deliver(m)
    for _ in range(3):
        present = [m for m in msgs if m in md.contents()]   # numbering = delivery order
        marked = {present[i - 1] for i in (1, 3, 5) if i <= len(present)}
        c = server.relogin("alice")
        assert c.cmd("STAT").startswith(b"+OK %d " % len(present))
        c.send(b"".join(b"DELE %d\r\n" % i for i in (1, 3, 5) if i <= len(present))
               + b"QUIT\r\n")
        c.close() if mode == "close" else c.reset()
        time.sleep(0.3)
        now = md.contents()
        for m in present:
            if m not in marked:
                assert m in now, "an unmarked message disappeared: %r" % m[-20:]


def test_drop_after_quit_simple(server):
    """DELE 2, QUIT, close at once: messages 1 and 3 always survive."""
    msgs = [g.header("s%d" % i) + b"x\n" for i in range(3)]
    md = server.maildir("alice")
    for m in msgs:
        md.deliver(m)
    c = server.login("alice")
    c.send(b"DELE 2\r\nQUIT\r\n")
    c.reset()
    time.sleep(0.5)
    left = md.contents()
    assert msgs[0] in left and msgs[2] in left


@pytest.mark.slow
@pytest.mark.parametrize("isolation", ["shared", "per-connection"])
def test_stalled_reader_50mb_retr_bounded_memory(server):
    """S-045/S-076: a client that stops reading in the middle of a 50 MB RETR costs the server
    bounded memory (< +30 MB RSS over the gannetd process tree), another session keeps working,
    and the transfer completes byte-exact once the client reads again."""
    line = b"0123456789abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ.-_+\n"
    n = 50 * 1024 * 1024 // len(line)
    big = b"Subject: fifty\n\n" + line * n
    server.maildir("alice").deliver(big)
    small = g.header("small") + b"still here\n"
    server.maildir("bob").deliver(small)
    exp = g.retr_wire(big)
    c = server.login("alice")
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    time.sleep(0.3)
    base = server.rss_kb()
    c.send(b"RETR 1\r\n")
    first = c.read_exact(256 * 1024, g.t(20))
    assert first.startswith(b"+OK")
    peak = base
    t_end = time.monotonic() + 3
    while time.monotonic() < t_end:
        peak = max(peak, server.rss_kb())
        time.sleep(0.2)
    other = server.login("bob")
    assert other.cmd("STAT") == b"+OK 1 %d\r\n" % len(g.to_wire(small))
    assert other.retr(1) == g.retr_wire(small)
    assert other.quit().startswith(b"+OK")
    peak = max(peak, server.rss_kb())
    print("rss growth with a stalled 50 MB RETR: %d kB" % (peak - base))
    if not g.ASAN:  # ASan's allocator quarantine keeps freed chunks: RSS says nothing there
        assert peak - base < 30 * 1024, "RSS grew by %d kB with a stalled reader" % (peak - base)
    status_end = first.index(b"\r\n") + 2
    h = hashlib.sha256(first[status_end:])
    got = len(first) - status_end
    c.sock.settimeout(g.t(60))
    rest = bytes(c.buf)
    c.buf.clear()
    h.update(rest)
    got += len(rest)
    while got < len(exp):
        data = c.sock.recv(1 << 20)
        assert data, "connection closed after %d of %d bytes" % (got, len(exp))
        h.update(data)
        got += len(data)
    assert got == len(exp)
    assert h.hexdigest() == hashlib.sha256(exp).hexdigest()
    assert c.cmd("NOOP").startswith(b"+OK")


def test_many_sessions_idle_in_authorization_then_work(server):
    """200 connected clients sitting in AUTHORIZATION; each can still log in afterwards in turn
    (alice's lock is taken and released 200 times)."""
    conns = [server.connect() for _ in range(200)]
    for c in conns:
        assert c.greeting.startswith(b"+OK")
    for c in conns[:50]:
        c.login("alice", server.password("alice"))
        assert c.quit().startswith(b"+OK")   # S-071: the lock is free once QUIT is answered
    for c in conns[50:]:
        c.close()
