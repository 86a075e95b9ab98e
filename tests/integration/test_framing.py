"""Framing, syntax, lengths, bad input and pipelining.

S-001..S-014, S-044, S-045; edge cases 15, 16; max_bad_commands.
"""

import random
import re
import socket
import time

import pytest

import gannettest as g


def msgs3(srv):
    ms = [g.header("m%d" % i) + (b"line %d\n" % i) * (i + 1) for i in range(3)]
    md = srv.maildir("alice")
    for m in ms:
        md.deliver(m)
    return ms


def test_s001_s002_status_indicators_and_crlf(server):
    """S-001/S-002: every reply line starts with +OK/-ERR and every line ends in CRLF; no bare LF
    anywhere in status lines, listings or an LF-stored message."""
    msgs3(server)
    c = server.connect()
    raw = [c.greeting]
    for cmd in ("CAPA", "FOO", "USER alice", "PASS " + server.password("alice"), "STAT", "LIST",
                "UIDL", "RETR 1", "TOP 2 1", "DELE 3", "LIST 3", "RSET", "NOOP", "BAR baz", "QUIT"):
        c.send(cmd.encode() + b"\r\n")
        st = c.readline()
        assert st.startswith(b"+OK") or st.startswith(b"-ERR"), (cmd, st)
        assert not st.startswith(b"+ok") and not st.startswith(b"-err")
        raw.append(st)
        if st.startswith(b"+OK") and cmd.split()[0] in ("CAPA", "LIST", "UIDL", "RETR", "TOP") \
                and not (cmd.startswith("LIST ")):
            raw.append(c.read_multi())
    blob = b"".join(raw)
    assert re.search(rb"(?<!\r)\n", blob) is None, "bare LF on the wire"
    for st in raw:
        assert st.endswith(b"\r\n")


def test_s003_keywords_case_insensitive(server):
    """S-003: stat, StAt, uidl 1, user/pass in lower case all work."""
    msgs3(server)
    c = server.connect()
    assert c.cmd("user alice").startswith(b"+OK")
    assert c.cmd("pAsS " + server.password("alice")).startswith(b"+OK")
    a = c.cmd("stat")
    assert a == c.cmd("StAt") == c.cmd("STAT")
    assert c.cmd("uidl 1") == c.cmd("UIDL 1")
    assert c.cmd("list 2") == c.cmd("LIST 2")
    assert c.cmd("noop").startswith(b"+OK")


def test_s009_unknown_and_bad_syntax(server):
    """S-009: unknown commands and bad syntax -> -ERR, the session goes on."""
    msgs3(server)
    c = server.login("alice")
    for cmd in ("FOO", "RETR", "RETR abc", "LIST 1 2", "UIDL 1 2", "DELE", "DELE 1 2", "STAT 1",
                "NOOP x", "RSET 1", "QUITX", "QUIT 1", "", " ", " STAT", "STAT ", "RETRR 1",
                "XTND XMIT"):
        r = c.cmd(cmd)
        assert r.startswith(b"-ERR"), (cmd, r)
        assert c.read_available(0.03) == b"", cmd
    assert c.cmd("STAT").startswith(b"+OK 3 ")


def test_s011_spacing_is_strict(server):
    """S-011: two spaces, a trailing space or a leading space -> -ERR, never message 0."""
    msgs3(server)
    c = server.login("alice")
    for cmd in ("LIST  1", "LIST 1 ", "RETR  1", "UIDL 1 ", "DELE  1", "TOP 1  0", "TOP  1 0",
                "LIST\t1"):
        r = c.cmd(cmd)
        assert r.startswith(b"-ERR"), (cmd, r)
        assert c.read_available(0.03) == b"", cmd
    assert c.cmd("STAT").startswith(b"+OK 3 ")   # nothing got deleted


BAD_NUMBERS = ["0", "-1", "+1", "01", "1x", "x1", "1.0", "0x1", "4294967297", "4294967296",
               "4294967295", "18446744073709551616", "18446744073709551617", "99999999999999999999",
               "999", "4", "", "\u0661"]


def test_s012_number_edge_cases(gannet):
    """S-012: message numbers are plain decimal in range; anything else -> -ERR, and in
    particular never an alias of message 1 after overflow (nothing deleted, nothing listed)."""
    srv = gannet(max_bad_commands="1000")
    msgs3(srv)
    c = srv.login("alice")
    fails = []
    for cmd in ("LIST %s", "RETR %s", "UIDL %s", "TOP %s 0", "DELE %s"):
        for n in BAD_NUMBERS:
            line = (cmd % n).encode("utf-8")
            c.send(line + b"\r\n")
            r = c.readline()
            extra = c.read_available(0.03)
            if not r.startswith(b"-ERR") or extra:
                fails.append((line, r, extra[:60]))
    assert not fails, fails
    assert c.cmd("STAT").startswith(b"+OK 3 ")
    c.quit()
    assert srv.stat("alice")[0] == 3


def test_s013_nul_and_bare_cr_in_command(server):
    """S-013: NUL or a bare CR inside a line -> -ERR; the session goes on."""
    c = server.connect()
    for raw in (b"USER a\x00b\r\n", b"CA\x00PA\r\n", b"NO\rOP\r\n", b"USER al\rice\r\n",
                b"\x00\r\n"):
        c.send(raw)
        r = c.readline()
        assert r.startswith(b"-ERR"), (raw, r)
        assert c.read_available(0.05) == b"", raw
    c.login("alice", server.password("alice"))
    c.send(b"PASS x\x00y\r\n")
    assert c.readline().startswith(b"-ERR")
    assert c.cmd("STAT") == b"+OK 0 0\r\n"


def test_s013_bare_lf_terminator_accepted(server):
    """S-013/edge 18: a bare LF ends a command like CRLF; replies still end in CRLF."""
    msgs3(server)
    c = server.connect()
    c.send(b"USER alice\n")
    assert c.readline().startswith(b"+OK")
    c.send(b"PASS " + server.password("alice").encode() + b"\n")
    assert c.readline().startswith(b"+OK")
    c.send(b"STAT\n")
    st = c.readline()
    assert re.match(rb"^\+OK 3 \d+\r\n$", st), st
    c.send(b"RETR 1\n")
    assert c.readline().startswith(b"+OK")
    assert c.read_multi().endswith(b"\r\n.\r\n")


def test_s014_edge16_command_split_across_writes(server):
    """S-014/edge 16: 'RE' ... 'TR 1\\r\\n' with pauses, and CR / LF in separate writes."""
    ms = msgs3(server)
    c = server.login("alice")
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.send(b"RE")
    time.sleep(0.2)
    assert c.read_available(0.05) == b""
    c.send(b"TR 1")
    time.sleep(0.2)
    c.send(b"\r\n")
    assert c.readline().startswith(b"+OK")
    assert c.read_multi() == g.retr_wire(ms[0])
    c.send(b"STAT\r")
    time.sleep(0.2)
    c.send(b"\n")
    assert re.match(rb"^\+OK 3 \d+\r\n$", c.readline())
    for ch in b"LIST 2\r\n":        # one byte per write
        c.send(bytes([ch]))
        time.sleep(0.01)
    assert c.readline() == b"+OK 2 %d\r\n" % len(g.to_wire(ms[1]))


def test_s006_long_lines_rejected_session_survives(server):
    """S-006: a line over 255 octets (CRLF included) -> one -ERR once it ends; 255 is fine."""
    c = server.connect()
    ok = b"USER " + b"a" * 248 + b"\r\n"          # 255 octets
    assert len(ok) == 255
    c.send(ok)
    assert c.readline().startswith(b"+OK")
    c.send(b"USER " + b"a" * 249 + b"\r\n")        # 256 octets
    assert c.readline().startswith(b"-ERR")
    assert c.read_available(0.1) == b""
    c.send(b"NOOP " + b"x" * 1000 + b"\r\n")
    assert c.readline().startswith(b"-ERR")
    assert c.read_available(0.1) == b""            # exactly one reply for the long line
    c.login("alice", server.password("alice"))
    assert c.cmd("STAT") == b"+OK 0 0\r\n"


@pytest.mark.parametrize("size", [100 * 1024, 4 * 1024 * 1024])
def test_s006_huge_line_without_crlf_bounded(server, size):
    """S-006: 100 kB (and 4 MB) with no CRLF -> bounded memory; after the CRLF one -ERR, and
    NOOP works afterwards."""
    c = server.login("alice")
    base = server.rss_kb()
    chunk = b"A" * 65536
    sent = 0
    peak = base
    while sent < size:
        c.send(chunk[: min(len(chunk), size - sent)])
        sent += min(len(chunk), size - sent)
        if sent % (1024 * 1024) == 0:
            peak = max(peak, server.rss_kb())
    time.sleep(0.3)
    peak = max(peak, server.rss_kb())
    got = c.read_available(0.2)
    assert got == b"", got[:100]       # the reply comes once the line ends
    c.send(b"\r\n")
    r = c.readline()
    assert r.startswith(b"-ERR"), r
    assert c.read_available(0.2) == b""
    assert c.cmd("NOOP").startswith(b"+OK")
    print("rss growth while receiving a %d-byte line: %d kB" % (size, peak - base))
    if not g.ASAN:  # ASan's allocator quarantine keeps freed chunks: RSS says nothing there
        assert peak - base < 8 * 1024, "gannetd grew by %d kB while buffering a line" % (
            peak - base)


def test_binary_junk_does_not_hurt_the_server(server):
    """Random binary junk (NULs, bare CRs, high bytes) gets -ERR replies or a close; the server
    keeps serving others."""
    rnd = random.Random(42)
    junk = bytes(rnd.randrange(256) for _ in range(64 * 1024))
    c = server.connect()
    try:
        c.send(junk)
        c.send(b"\r\n")
    except OSError:
        pass
    try:
        got = c.wait_closed(g.t(5))
    except socket.timeout:
        got = c.read_available(0.1)
    for line in got.split(b"\r\n"):
        assert line == b"" or line.startswith(b"-ERR"), line[:100]
    d = server.login("bob")
    assert d.cmd("STAT") == b"+OK 0 0\r\n"


def test_bad_command_limit_default_20(server):
    """max_bad_commands default 20: 19 mixed bad commands (unknown, wrong state, bad syntax, too
    long) leave the session working; the 20th gets -ERR and the server closes."""
    c = server.connect()
    bad = (["FOO"] * 5 + ["STAT", "RETR 1", "DELE 1", "NOOP", "UIDL"] + ["USER", "USER  alice",
           "CAPA x", "PASS", "QUIT x"] + ["X" * 300] * 4)
    assert len(bad) == 19
    for b in bad:
        r = c.cmd(b)
        assert r.startswith(b"-ERR"), (b, r)
    assert c.capa()[0] == "TOP"
    c.send(b"FOO\r\n")
    rest = c.wait_closed(g.t(5))
    assert rest.startswith(b"-ERR"), rest
    for line in rest.split(b"\r\n")[:-1]:
        assert line.startswith(b"-ERR"), rest


def test_bad_command_limit_10_after_login_counts(gannet):
    """max_bad_commands = 10: ten bad commands then a working command is not possible, nine is."""
    srv = gannet(max_bad_commands="10")
    c = srv.login("alice")
    for _ in range(9):
        assert c.cmd("BOGUS").startswith(b"-ERR")
    assert c.cmd("STAT") == b"+OK 0 0\r\n"
    c.send(b"BOGUS\r\n")
    rest = c.wait_closed(g.t(5))
    assert rest.startswith(b"-ERR"), rest


def test_ten_bad_commands_then_working(server):
    """At least ten bad commands never close the session (default limit)."""
    c = server.connect()
    for i in range(10):
        assert c.cmd("JUNK%d" % i).startswith(b"-ERR")
    c.login("alice", server.password("alice"))
    assert c.cmd("STAT") == b"+OK 0 0\r\n"


@pytest.mark.parametrize("isolation", ["shared", "per-connection"])
def test_s044_pipelining_in_order(server):
    """S-044/edge 15: STAT LIST UIDL RETR 1 NOOP in one write -> the same bytes as sent one by one."""
    ms = msgs3(server)
    c = server.login("alice")
    seq = [c.cmd("STAT"), c.cmd_multi("LIST"), c.cmd_multi("UIDL"), c.cmd_multi("RETR 1"),
           c.cmd("NOOP")]
    expected = b"".join(x if isinstance(x, bytes) else x[0] + x[1] for x in seq)
    c.send(b"STAT\r\nLIST\r\nUIDL\r\nRETR 1\r\nNOOP\r\n")
    got = c.read_exact(len(expected))
    assert got == expected
    assert c.read_available(0.2) == b""
    assert seq[3][1] == g.retr_wire(ms[0])


@pytest.mark.parametrize("isolation", ["shared", "per-connection"])
def test_edge15_pipelined_login_and_commands(server):
    """Edge 15: USER, PASS, STAT, LIST 1, QUIT in one write: the bytes after PASS are handed on
    to the TRANSACTION state and answered in order."""
    ms = msgs3(server)
    c = server.connect()
    pw = server.password("alice").encode()
    c.send(b"USER alice\r\nPASS " + pw + b"\r\nSTAT\r\nLIST 1\r\nUIDL\r\nQUIT\r\n")
    assert c.readline().startswith(b"+OK")
    assert c.readline().startswith(b"+OK")
    total = sum(len(g.to_wire(m)) for m in ms)
    assert c.readline() == b"+OK 3 %d\r\n" % total
    assert c.readline() == b"+OK 1 %d\r\n" % len(g.to_wire(ms[0]))
    assert c.readline().startswith(b"+OK")
    assert len(g.multiline_lines(c.read_multi())) == 3
    assert c.readline().startswith(b"+OK")
    assert c.wait_closed(g.t(5)) == b""


def test_s044_many_pipelined_commands(server):
    """200 pipelined commands of mixed kinds are answered in order."""
    ms = msgs3(server)
    c = server.login("alice")
    cmds, expect = [], []
    for i in range(200):
        n = i % 3 + 1
        kind = i % 4
        if kind == 0:
            cmds.append(b"LIST %d" % n)
            expect.append(b"+OK %d %d\r\n" % (n, len(g.to_wire(ms[n - 1]))))
        elif kind == 1:
            cmds.append(b"RETR %d" % n)
            expect.append(None)
        elif kind == 2:
            cmds.append(b"NOOP")
            expect.append(b"+OK")
        elif i % 40 == 3:   # a few errors only: whether they count as bad commands is moot here
            cmds.append(b"LIST 9")
            expect.append(b"-ERR")
        else:
            cmds.append(b"UIDL %d" % n)
            expect.append(b"+OK %d " % n)
    c.send(b"".join(x + b"\r\n" for x in cmds))
    for i, (cmd, exp) in enumerate(zip(cmds, expect)):
        st = c.readline()
        if exp is None:
            assert st.startswith(b"+OK"), (i, cmd, st)
            assert c.read_multi() == g.retr_wire(ms[int(cmd.split()[1]) - 1]), (i, cmd)
        else:
            assert st.startswith(exp), (i, cmd, st)


@pytest.mark.slow
def test_s045_pipelined_retrs_with_slow_reader(server):
    """S-045: pipeline 40 RETRs of a 1 MB message, read nothing for 2 s, then everything arrives
    in order and byte-exact (no deadlock between the server's input and output)."""
    m = g.big_message(1024 * 1024, seed=3)
    server.maildir("alice").deliver(m)
    c = server.login("alice")
    c.send(b"RETR 1\r\n" * 40)
    time.sleep(2)
    exp = g.retr_wire(m)
    for i in range(40):
        st = c.readline(g.t(30))
        assert st.startswith(b"+OK"), (i, st)
        assert c.read_multi(g.t(30)) == exp, i
    assert c.cmd("NOOP").startswith(b"+OK")


def test_out_of_range_numbers_are_not_bad_commands(server):
    """The contract counts unknown, wrong-state, bad-syntax and too-long commands towards
    max_bad_commands; a well-formed command naming a missing message is none of these, so 25 of
    them (more than the default limit of 20) must not close the session."""
    msgs3(server)
    c = server.login("alice")
    for i in range(25):
        r = c.cmd("RETR 9")
        assert r.startswith(b"-ERR"), (i, r)
    assert c.cmd("STAT").startswith(b"+OK 3 ")
