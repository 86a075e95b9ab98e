"""TRANSACTION and UPDATE: STAT, LIST, UIDL, RETR, TOP, DELE, RSET, NOOP, QUIT, Maildir rules.

S-023, S-050..S-062, S-064..S-072, S-137..S-141, S-143; edge cases 1-5, 8, 9.
"""

import hashlib
import os
import re
import socket

import pytest

import gannettest as g


def fill(srv, user, messages, **kw):
    md = srv.maildir(user)
    return [md.deliver(m, **kw) for m in messages]


def sized(n, tag):
    """An LF-stored message whose CRLF wire size is exactly N."""
    head = ("Subject: %s\n\n" % tag).encode()
    # wire = len(head)+2 (two LFs become CRLF) + body lines; one body line "x...x\n" of L bytes
    # adds L+2.
    body_len = n - (len(head) + 2) - 2
    assert body_len >= 0
    m = head + b"x" * body_len + b"\n"
    assert len(g.to_wire(m)) == n
    return m


@pytest.mark.parametrize("isolation", ["shared", "per-connection"])
def test_s023_s050_s051_stat_exact(server):
    """S-050/S-051: STAT is exactly '+OK count octets' over undeleted messages."""
    fill(server, "alice", [sized(100, "a"), sized(200, "b"), sized(300, "c")])
    c = server.login("alice")
    assert c.cmd("STAT") == b"+OK 3 600\r\n"
    assert c.cmd("DELE 2").startswith(b"+OK")
    assert c.cmd("STAT") == b"+OK 2 400\r\n"


def test_s054_list_and_list_n_exact(server):
    """S-054/S-023: LIST lists 1..n with sizes; LIST n is exactly '+OK n size'."""
    fill(server, "alice", [sized(100, "a"), sized(200, "b"), sized(300, "c")])
    c = server.login("alice")
    status, body = c.cmd_multi("LIST")
    assert re.match(rb"^\+OK[^\r\n]*\r\n$", status), status
    assert body == b"1 100\r\n2 200\r\n3 300\r\n.\r\n"
    assert c.cmd("LIST 2") == b"+OK 2 200\r\n"
    assert c.cmd("list 3") == b"+OK 3 300\r\n"


def test_s067_s068_uidl_exact(server):
    """S-067/S-068: UIDL listing and UIDL n are exact; the value is the Maildir unique part."""
    md = server.maildir("alice")
    names = [md.deliver(sized(50, "u%d" % i)) for i in range(3)]
    c = server.login("alice")
    status, body = c.cmd_multi("UIDL")
    assert status.startswith(b"+OK")
    assert body == b"".join(b"%d %s\r\n" % (i + 1, n.encode()) for i, n in enumerate(names)) + b".\r\n"
    assert c.cmd("UIDL 2") == b"+OK 2 " + names[1].encode() + b"\r\n"
    assert c.cmd("DELE 2").startswith(b"+OK")
    _, body = c.cmd_multi("UIDL")
    assert body == b"1 %s\r\n3 %s\r\n.\r\n" % (names[0].encode(), names[2].encode())


def test_uidl_from_name_with_size_and_info(server):
    """UIDL of `1700000000.M1P2.host,S=123:2,` is `1700000000.M1P2.host`."""
    server.maildir("alice").deliver(b"Subject: x\n\nx\n", name="1700000000.M1P2.host,S=123:2,",
                                    subdir="cur")
    c = server.login("alice")
    assert c.cmd("UIDL 1") == b"+OK 1 1700000000.M1P2.host\r\n"


def test_s139_uidl_hashed_for_long_or_odd_unique_part(server):
    """S-139/S-064: unique parts > 70 chars or with bytes outside 0x21..0x7E map to H+40 hex."""
    md = server.maildir("alice")
    long_name = "1136731697.M580106P15382V0000000000000303I0009030C_0." + "x" * 30 + ".example.org"
    assert len(long_name) > 70
    names = [md.deliver(b"Subject: a\n\na\n", name=long_name + ",S=14"),
             md.deliver(b"Subject: b\n\nb\n", name="1700000002.M2P2.host with space"),
             md.deliver(b"Subject: c\n\nc\n", name="x" * 70)]
    c = server.login("alice")
    _, body = c.cmd_multi("UIDL")
    got = [ln.split(b" ", 1)[1].decode() for ln in g.multiline_lines(body)]
    exp = ["H" + hashlib.sha256(long_name.encode()).hexdigest()[:40],
           "H" + hashlib.sha256(b"1700000002.M2P2.host with space").hexdigest()[:40],
           "x" * 70]
    assert got == exp
    for u in got:
        assert re.match(r"^[\x21-\x7e]{1,70}$", u)
    c.close()
    c = server.relogin("alice")  # S-065: stable across sessions
    _, body2 = c.cmd_multi("UIDL")
    assert body2 == body


def test_s065_s138_uidl_stable_across_sessions_drop_and_seen_rename(server):
    """S-065: UIDL survives a session ended without QUIT; S-138: and the :2,S rename after RETR."""
    md = server.maildir("alice")
    for i in range(3):
        md.deliver(sized(80, "s%d" % i))
    c = server.login("alice")
    _, first = c.cmd_multi("UIDL")
    c.close()
    c = server.relogin("alice")
    _, second = c.cmd_multi("UIDL")
    assert second == first
    c.retr(1)
    c.retr(3)
    assert c.quit().startswith(b"+OK")
    c = server.login("alice")
    _, third = c.cmd_multi("UIDL")
    assert third == first


def test_s066_uidl_not_reused_for_identical_redelivery(server):
    """S-066: delete message A, deliver a byte-identical A' -> a different UIDL."""
    data = g.header("same") + b"identical\n"
    server.maildir("alice").deliver(data)
    c = server.login("alice")
    uid_a = c.cmd("UIDL 1")
    c.cmd("DELE 1")
    assert c.quit().startswith(b"+OK")
    server.maildir("alice").deliver(data)
    c = server.login("alice")
    uid_b = c.cmd("UIDL 1")
    assert uid_a.startswith(b"+OK 1 ") and uid_b.startswith(b"+OK 1 ")
    assert uid_a != uid_b


def test_s138_retr_moves_new_to_cur_with_seen_flag(server):
    """After RETR (and QUIT) the file is in cur/ with :2,S and the same unique name."""
    md = server.maildir("alice")
    name = md.deliver(g.header("seen") + b"x\n")
    c = server.login("alice")
    uid = c.cmd("UIDL 1")
    c.retr(1)
    assert c.quit().startswith(b"+OK")
    files = md.files()
    assert list(files) == [name + ":2,S"], files
    assert files[name + ":2,S"][0] == "cur"
    c = server.login("alice")
    assert c.cmd("UIDL 1") == uid


def test_s141_seen_flag_keeps_flag_order(server):
    """S-141: cur/x:2,FR plus Seen -> x:2,FRS."""
    md = server.maildir("alice")
    md.deliver(g.header("flags") + b"x\n", name="1700000100.M1P1.host", subdir="cur", info=":2,FR")
    c = server.login("alice")
    c.retr(1)
    c.quit()
    assert list(md.files()) == ["1700000100.M1P1.host:2,FRS"]


def test_top_does_not_mark_seen(server):
    md = server.maildir("alice")
    name = md.deliver(g.header("top") + b"x\n")
    c = server.login("alice")
    assert c.cmd_multi("TOP 1 0")[0].startswith(b"+OK")
    c.quit()
    assert md.files()[name][0] == "new"


VARIED = g.varied_messages()


@pytest.mark.parametrize("isolation", ["shared", "per-connection"])
def test_s052_s060_s069_retr_exact_bytes_varied_maildrop(server):
    """S-052/S-053/S-060/S-069, edge cases 1-5, 9: for every message of the varied maildrop the
    RETR bytes are exactly the stuffed CRLF form, and LIST size == unstuffed body length."""
    fill(server, "alice", [m for _, m in VARIED])
    c = server.login("alice")
    total = sum(len(g.to_wire(m)) for _, m in VARIED)
    assert c.cmd("STAT") == b"+OK %d %d\r\n" % (len(VARIED), total)
    status, listing = c.cmd_multi("LIST")
    sizes = [int(ln.split()[1]) for ln in g.multiline_lines(listing)]
    for i, (label, stored) in enumerate(VARIED, 1):
        body = c.retr(i)
        assert body == g.retr_wire(stored), label
        assert sizes[i - 1] == len(g.unstuff(body[:-3])) == len(g.to_wire(stored)), label
        assert c.cmd("LIST %d" % i) == b"+OK %d %d\r\n" % (i, sizes[i - 1])


@pytest.mark.parametrize("stored,wire", [
    (b"a\r\nb\nc\r\n", b"a\r\nb\r\nc\r\n"),                       # edge 1: mixed endings
    (b"a\rb\n", b"a\rb\r\n"),                                     # edge 2: bare CR passes
    (b"x\r.y\n.z\n", b"x\r.y\r\n.z\r\n"),                         # edge 2: CR then '.' no stuff
    (b"a\x00b\nc\x00\n", b"a\x00b\r\nc\x00\r\n"),                 # edge 3: NUL bytes
    (b"one\nlast", b"one\r\nlast\r\n"),                           # edge 4: no final newline
    (b".\n..\n", b".\r\n..\r\n"),                                 # S-053 (6 octets)
    (b".\r\n. \n.\r\r\n.x\n", b".\r\n. \r\n.\r\r\n.x\r\n"),       # edge 5
    (b"\n", b"\r\n"),
    (b"\xff\xfe\x80binary\n", b"\xff\xfe\x80binary\r\n"),
], ids=["mixed", "bare-cr", "cr-dot", "nul", "no-final-nl", "dots", "dot-variants", "lone-lf",
        "8bit"])
def test_edge_wire_transform(server, stored, wire):
    """Edge cases 1-5: exact wire form, and LIST counts it (S-052, S-053). In UTF-8 mode, since
    "8bit" is all header and 8-bit header bytes need it (RFC 6856 §2.1, test_utf8_lang.py)."""
    assert g.to_wire(stored) == wire
    server.maildir("alice").deliver(stored)
    c = server.connect()
    assert c.cmd("UTF8") == b"+OK UTF-8 mode enabled\r\n"
    c.login("alice", server.password("alice"))
    assert c.cmd("LIST 1") == b"+OK 1 %d\r\n" % len(wire)
    assert c.retr(1) == g.stuff(wire) + b".\r\n"
    if stored == b".\n..\n":
        assert c.retr(1) == b"..\r\n...\r\n.\r\n"     # S-053 literally


def test_edge5_dots_and_crlf_at_chunk_boundaries(server):
    """Edge 5/16 server side: dot lines and a CRLF split exactly at 64 KiB read boundaries."""
    msgs = []
    for boundary in (65536, 131072, 4096, 8192, 16384, 32768):
        for delta in (-2, -1, 0, 1):
            pos = boundary + delta   # where the '.' line starts in the stored file
            head = b"Subject: boundary\n\n"
            filler_len = pos - len(head) - 1
            filler = (b"f" * 79 + b"\n") * (filler_len // 80)
            filler += b"g" * (filler_len - len(filler))
            m = head + filler + b"\n.dot at %d\n..\n.\nend\n" % pos
            assert m[pos:pos + 1] == b"."
            msgs.append(m)
    head = b"Subject: crlf\r\n\r\n"
    crlf = head + b"z" * (65535 - len(head)) + b"\r\n.after\r\n"
    assert crlf[65535:65537] == b"\r\n"     # CR ends one 64 KiB chunk, LF starts the next
    msgs.append(crlf)
    fill(server, "alice", msgs)
    c = server.login("alice")
    for i, m in enumerate(msgs, 1):
        body = c.retr(i)
        assert body == g.retr_wire(m), i
        assert c.cmd("LIST %d" % i) == b"+OK %d %d\r\n" % (i, len(g.to_wire(m)))


def test_edge8_empty_maildrop(server):
    """Edge 8/S-054: STAT +OK 0 0, LIST and UIDL empty listings, RETR 1 -ERR, QUIT +OK."""
    c = server.login("alice")
    assert c.cmd("STAT") == b"+OK 0 0\r\n"
    status, body = c.cmd_multi("LIST")
    assert status.startswith(b"+OK") and body == b".\r\n"
    status, body = c.cmd_multi("UIDL")
    assert status.startswith(b"+OK") and body == b".\r\n"
    for cmd in ("RETR 1", "LIST 1", "UIDL 1", "TOP 1 0", "DELE 1"):
        assert c.cmd(cmd).startswith(b"-ERR"), cmd
    assert c.cmd("QUIT").startswith(b"+OK")
    assert c.wait_closed(g.t(5)) == b""


def test_edge9_zero_byte_message(server):
    """Edge 9: a zero-byte file has size 0; RETR and TOP 1 0 are '+OK ...' then '.' at once."""
    server.maildir("alice").deliver(b"")
    c = server.login("alice")
    assert c.cmd("STAT") == b"+OK 1 0\r\n"
    assert c.cmd("LIST 1") == b"+OK 1 0\r\n"
    status, body = c.cmd_multi("RETR 1")
    assert status.startswith(b"+OK") and body == b".\r\n"
    status, body = c.cmd_multi("TOP 1 0")
    assert status.startswith(b"+OK") and body == b".\r\n"


TOPMSG = b"From: a@b\nSubject: top\n\nl1\n.l2\nl3\n\nl5\n"


@pytest.mark.parametrize("k", [0, 1, 2, 3, 5, 6, 999999])
def test_s061_top_exact(server, k):
    """S-061: TOP n k = header, blank line, first k body lines (stuffed); k past end == RETR."""
    server.maildir("alice").deliver(TOPMSG)
    c = server.login("alice")
    status, body = c.cmd_multi("TOP 1 %d" % k)
    assert status.startswith(b"+OK")
    assert body == g.top_wire(TOPMSG, k)
    if k == 0:
        assert body == b"From: a@b\r\nSubject: top\r\n\r\n.\r\n"
    if k >= 5:
        assert body == c.retr(1)


def test_s061_top_crlf_stored_and_dot_header(server):
    m = b"Subject: x\r\n.odd: header\r\n\r\n.b1\r\nb2\r\n"
    server.maildir("alice").deliver(m)
    c = server.login("alice")
    _, body = c.cmd_multi("TOP 1 1")
    assert body == b"Subject: x\r\n..odd: header\r\n\r\n..b1\r\n.\r\n"


def test_s062_top_without_blank_line_is_whole_message(server):
    """S-062: no header/body separator -> the whole message, no invented blank line."""
    m = b"Subject: only headers\nX-A: 1\nX-B: 2"
    server.maildir("alice").deliver(m)
    c = server.login("alice")
    for k in (0, 3):
        _, body = c.cmd_multi("TOP 1 %d" % k)
        assert body == b"Subject: only headers\r\nX-A: 1\r\nX-B: 2\r\n.\r\n", k


def test_top_argument_errors(server):
    """TOP needs two plain decimal arguments."""
    server.maildir("alice").deliver(TOPMSG)
    c = server.login("alice")
    for cmd in ("TOP", "TOP 1", "TOP 1 -1", "TOP 1 +1", "TOP 1 1x", "TOP 1 01", "TOP 0 1",
                "TOP 2 0", "TOP 1 0 0", "TOP 1  0", "TOP 1 0 ", "TOP 1 18446744073709551616"):
        r = c.cmd(cmd)
        assert r.startswith(b"-ERR"), (cmd, r)
        assert c.read_available(0.05) == b"", cmd
    # A huge but representable line count behaves like "all lines" or is refused; never breaks.
    status, body = c.cmd_multi("TOP 1 4294967296")
    if status.startswith(b"+OK"):
        assert body == c.retr(1)
    assert c.cmd("NOOP").startswith(b"+OK")


def test_s055_s056_deleted_and_out_of_range(server):
    """S-055: a deleted or out-of-range number -> -ERR for LIST/RETR/TOP/UIDL/DELE.
    S-056: numbers do not shift after DELE."""
    msgs = [sized(60 + i, "m%d" % i) for i in range(3)]
    fill(server, "alice", msgs)
    c = server.login("alice")
    assert c.cmd("DELE 1").startswith(b"+OK")
    for cmd in ("LIST 1", "RETR 1", "TOP 1 0", "UIDL 1", "DELE 1", "RETR 999", "LIST 4"):
        r = c.cmd(cmd)
        assert r.startswith(b"-ERR"), (cmd, r)
        assert c.read_available(0.05) == b"", cmd
    _, listing = c.cmd_multi("LIST")
    assert listing == b"2 61\r\n3 62\r\n.\r\n"
    assert c.retr(2) == g.retr_wire(msgs[1])


def test_s058_rset_unmarks_all(server):
    fill(server, "alice", [sized(100, "a"), sized(200, "b"), sized(300, "c")])
    c = server.login("alice")
    c.cmd("DELE 1")
    c.cmd("DELE 3")
    assert c.cmd("STAT") == b"+OK 1 200\r\n"
    assert c.cmd("RSET").startswith(b"+OK")
    assert c.cmd("STAT") == b"+OK 3 600\r\n"
    assert c.cmd("RETR 1").startswith(b"+OK")
    c.read_multi()
    assert c.quit().startswith(b"+OK")
    assert server.stat("alice") == (3, 600)


def test_s059_noop(server):
    fill(server, "alice", [sized(100, "a")])
    c = server.login("alice")
    assert c.cmd("NOOP").startswith(b"+OK")
    assert c.read_available(0.1) == b""
    assert c.cmd("STAT") == b"+OK 1 100\r\n"


@pytest.mark.parametrize("isolation", ["shared", "per-connection"])
def test_s070_quit_removes_only_deleted(server):
    """S-070: QUIT in TRANSACTION removes exactly the DELEted files, replies +OK, closes."""
    msgs = [sized(100 + i, "q%d" % i) for i in range(5)]
    fill(server, "alice", msgs)
    c = server.login("alice")
    c.cmd("DELE 2")
    c.cmd("DELE 4")
    assert c.cmd("QUIT").startswith(b"+OK")
    assert c.wait_closed(g.t(5)) == b""
    assert server.maildir("alice").contents() == sorted([msgs[0], msgs[2], msgs[4]])
    c = server.login("alice")
    _, listing = c.cmd_multi("LIST")
    assert listing == b"1 100\r\n2 102\r\n3 104\r\n.\r\n"


@pytest.mark.parametrize("how", ["close", "rst", "half-close"])
def test_s057_s072_no_update_without_quit(server, how):
    """S-057/S-072: DELE then drop (FIN, RST, or half-close) -> nothing deleted."""
    msgs = [sized(100 + i, "d%d" % i) for i in range(2)]
    fill(server, "alice", msgs)
    c = server.login("alice")
    assert c.cmd("DELE 1").startswith(b"+OK")
    if how == "close":
        c.close()
    elif how == "rst":
        c.reset()
    else:
        c.sock.shutdown(socket.SHUT_WR)
        assert c.wait_closed(g.t(5)) == b""
    assert server.stat("alice") == (2, 201)


def test_edge17_quit_without_crlf_then_half_close(server):
    """Edge 17: 'QUIT' without CRLF then EOF -> no UPDATE, the server closes, does not spin."""
    fill(server, "alice", [sized(100, "a"), sized(101, "b")])
    c = server.login("alice")
    assert c.cmd("DELE 1").startswith(b"+OK")
    c.send(b"QUIT")
    c.sock.shutdown(socket.SHUT_WR)
    got = c.wait_closed(g.t(5))
    assert not got.startswith(b"+OK"), got
    pids = server.pids()
    t0 = g.cpu_ticks(pids)
    import time
    time.sleep(1.0)
    assert g.cpu_ticks(pids) - t0 < 50, "gannetd burns CPU after a half-closed session"
    assert server.stat("alice") == (2, 201)


def test_s140_only_regular_files_in_new_and_cur(server):
    """S-140: tmp/, dot-files, directories, FIFOs and symlinks are not messages."""
    md = server.maildir("alice")
    real = md.deliver(sized(100, "real"))
    with open(os.path.join(md.root, "tmp", "1700000999.M9P9.host"), "wb") as f:
        f.write(b"Subject: tmp\n\nin tmp\n")
    with open(os.path.join(md.root, "cur", ".hidden:2,"), "wb") as f:
        f.write(b"Subject: hidden\n\nhidden\n")
    with open(os.path.join(md.root, "new", ".hidden2"), "wb") as f:
        f.write(b"Subject: hidden\n\nhidden\n")
    os.mkdir(os.path.join(md.root, "new", "1700000998.dir.host"))
    os.mkfifo(os.path.join(md.root, "cur", "1700000997.fifo.host:2,"))
    os.symlink(os.path.join(md.root, "new", real), os.path.join(md.root, "cur", "1700000996.link:2,"))
    c = server.login("alice")
    assert c.cmd("STAT") == b"+OK 1 100\r\n"
    assert c.cmd("UIDL 1") == b"+OK 1 " + real.encode() + b"\r\n"


def test_delivery_order_mtime_then_name_new_and_cur(server):
    """Messages are numbered by mtime, then name, across new/ and cur/."""
    md = server.maildir("alice")
    plan = [  # (name, subdir, mtime)
        ("b-second.host", "cur", 1700000010),
        ("z-first.host", "new", 1700000005),
        ("a-third.host", "new", 1700000010),
        ("c-fourth.host", "new", 1700000010),
        ("y-last.host", "cur", 1700000020),
    ]
    for name, sub, mt in plan:
        md.deliver(("Subject: %s\n\n%s\n" % (name, name)).encode(), name=name, subdir=sub,
                   info=":2," if sub == "cur" else None, mtime=mt)
    order = ["z-first.host", "a-third.host", "b-second.host", "c-fourth.host", "y-last.host"]
    c = server.login("alice")
    _, body = c.cmd_multi("UIDL")
    assert [ln.split(b" ", 1)[1].decode() for ln in g.multiline_lines(body)] == order


def test_s143_snapshot_at_login(server):
    """S-143: mail delivered during the session is invisible until the next login."""
    md = server.maildir("alice")
    md.deliver(sized(100, "a"))
    c = server.login("alice")
    assert c.cmd("STAT") == b"+OK 1 100\r\n"
    md.deliver(sized(200, "b"))
    assert c.cmd("STAT") == b"+OK 1 100\r\n"
    _, listing = c.cmd_multi("LIST")
    assert listing == b"1 100\r\n.\r\n"
    assert c.cmd("RETR 2").startswith(b"-ERR")
    assert c.quit().startswith(b"+OK")
    assert server.stat("alice") == (2, 300)


def test_s137_size_ignores_filename_size_fields(server):
    """S-137: ,S= / ,W= in the name are not trusted; LIST is the real CRLF size."""
    md = server.maildir("alice")
    five = b"".join(b"%019d\n" % i for i in range(5))   # 5 LF lines of 20 octets = 100 bytes
    md.deliver(five, name="1700000001.M1P1.host,S=100,W=105", subdir="cur", info=":2,")
    md.deliver(five, name="1700000002.M2P2.host,S=10,W=10", subdir="cur", info=":2,")
    c = server.login("alice")
    assert c.cmd("LIST 1") == b"+OK 1 105\r\n"
    assert c.cmd("LIST 2") == b"+OK 2 105\r\n"
    assert c.cmd("UIDL 2") == b"+OK 2 1700000002.M2P2.host\r\n"


def test_s064_uidl_values_are_legal(server):
    """S-064: every UIDL value matches ^[\\x21-\\x7e]{1,70}$ (varied names)."""
    md = server.maildir("alice")
    for name in ("simple", "with,comma,S=1", "1136731697.M580106P15382V0000000000000303I0009030C_0"
                 ".host.example.org.very.long.name", "tab\there", "ümlaut", "a:b:2,S"):
        md.deliver(b"Subject: x\n\nx\n", name=name)
    c = server.login("alice")
    _, body = c.cmd_multi("UIDL")
    lines = g.multiline_lines(body)
    assert len(lines) == 6
    uids = []
    for i, ln in enumerate(lines, 1):
        m = re.match(rb"^(\d+) ([\x21-\x7e]{1,70})$", ln)
        assert m and int(m.group(1)) == i, ln
        uids.append(m.group(2))
    assert len(set(uids)) == 6


def test_s142_message_removed_from_outside_during_session(server):
    """S-142: a message that vanishes after login -> -ERR on RETR/TOP; the session goes on and
    the numbering does not shift."""
    msgs = [sized(100 + i, "v%d" % i) for i in range(3)]
    names = fill(server, "alice", msgs)
    c = server.login("alice")
    _, listing = c.cmd_multi("LIST")
    assert listing == b"1 100\r\n2 101\r\n3 102\r\n.\r\n"
    os.unlink(os.path.join(server.maildir("alice").root, "new", names[0]))
    r = c.cmd("RETR 1")
    assert r.startswith(b"-ERR"), r
    assert c.read_available(0.1) == b""
    assert c.cmd("TOP 1 0").startswith(b"-ERR")
    assert c.retr(2) == g.retr_wire(msgs[1])
    assert c.cmd("LIST 3") == b"+OK 3 102\r\n"
    assert c.cmd("DELE 3").startswith(b"+OK")
    assert c.quit().startswith(b"+OK")
    assert server.maildir("alice").contents() == [msgs[1]]
