"""UIDL migration (issue 3, item 3) against the real Dovecot from Debian (dovecot-pop3d).

Each test starts Dovecot itself (`dovecot -F -c CONF`, its own base_dir, a passwd-file passdb and
userdb: the very users file gannetd reads) on one Maildir, lets Dovecot assign its UIDLs, then
starts gannetd with the matching `uidl_source` on the same Maildir and compares the two servers
byte for byte: UIDL, LIST and every RETR body, and `gannetctl uidl list` against the UIDL listing.

Dovecot drops to the mail owner: as root that is `nobody` (the Maildir is chowned to it, under a
0755 directory of its own because pytest's tmp_path is 0700); otherwise Dovecot runs as the
current user with no privilege change. Every process is stopped by its PID with bounded waits.
"""

import os
import poplib
import shutil
import subprocess
import tempfile

import pytest

import dovecotsrv
import gannettest as g

USER = "alice"
PASSWORD = "Pw-dovecot-uidl-7f3c"


# ---------------------------------------------------------------------------------------------
# Fixtures: one home shared by both servers


class Env:
    """The shared home, the gannetd instance (not started) and the user file both read."""

    def __init__(self, gannet):
        self.top = dovecotsrv.make_top("gn-dcu-")
        self.owner = dovecotsrv.mail_owner()
        self.home = os.path.join(self.top, "home")
        self.md = g.Maildir(os.path.join(self.home, "Maildir"))
        self.gannet = gannet(users=(), start=False)
        # Dovecot's auth process (user dovecot) reads the very file gannetd reads: it lives in
        # the 0755 directory, not in pytest's 0700 tmp_path.
        self.gannet.userdb = os.path.join(self.top, "users")
        self.gannet.add_user(USER, password=PASSWORD, home=self.home, make_maildir=False)
        os.chmod(self.gannet.userdb, 0o644)
        self.dovecots = []

    def chown(self):
        dovecotsrv.chown_tree(self.home, self.owner)

    def deliver(self, data, name, subdir="new", mtime=None):
        n = self.md.deliver(data, name=name, subdir=subdir, mtime=mtime)
        self.chown()
        return n

    def dovecot(self, **kw):
        d = dovecotsrv.Dovecot(self.top, users_file=self.gannet.userdb, owner=self.owner, **kw)
        self.dovecots.append(d)
        return d.start()

    def close(self):
        leftovers = []
        for d in self.dovecots:
            leftovers += d.stop()
        shutil.rmtree(self.top, ignore_errors=True)
        return leftovers


@pytest.fixture
def env(gannet):
    dovecotsrv.need_dovecot()
    e = Env(gannet)
    yield e
    for d in e.dovecots:  # shown by pytest when the test failed
        print("----- dovecot log (%s) -----\n%s" % (d.dir, d.log_text()))
    left = e.close()
    assert not left, "dovecot processes left running: %s" % left


# ---------------------------------------------------------------------------------------------
# Helpers


def poplib_first_login(port):
    """A real client's first session: Dovecot assigns UIDs and writes dovecot-uidlist."""
    box = poplib.POP3("127.0.0.1", port, timeout=g.t(10))
    try:
        box.user(USER)
        box.pass_(PASSWORD)
        count, _size = box.stat()
        resp, lines, _ = box.uidl()
        assert resp.startswith(b"+OK"), resp
        assert len(lines) == count
    finally:
        box.quit()
    return count


def listing(port, retr=True, quit=True):
    """Exact bodies of UIDL and LIST, and of RETR for every message (a list)."""
    c = g.Pop3Conn.open(port)
    assert c.greeting.startswith(b"+OK"), c.greeting
    c.login(USER, PASSWORD)
    st, uidl = c.cmd_multi("UIDL")
    assert st.startswith(b"+OK"), st
    st, lst = c.cmd_multi("LIST")
    assert st.startswith(b"+OK"), st
    bodies = []
    if retr:
        for i in range(1, len(g.multiline_lines(uidl)) + 1):
            bodies.append(c.retr(i))
    if quit:
        assert c.quit().startswith(b"+OK")
        return uidl, lst, bodies, None
    return uidl, lst, bodies, c


def uidl_pairs(body):
    return [tuple(ln.decode().split(" ", 1)) for ln in g.multiline_lines(body)]


def ctl(gs, *args, tmpdir=None):
    extra = {"TMPDIR": tmpdir} if tmpdir else None
    return subprocess.run([g.GANNETCTL, "-c", gs.conf_path] + list(args), capture_output=True,
                          timeout=g.t(30), env=g.run_env(extra))


def ctl_uidl_list(gs, user=USER, tmpdir=None):
    out = ctl(gs, "uidl", "list", user, tmpdir=tmpdir)
    assert out.returncode == 0, out
    return out.stdout


def as_ctl_output(uidl_body):
    """What `gannetctl uidl list` prints for a UIDL body: the same lines, LF-terminated."""
    return b"".join(ln + b"\n" for ln in g.multiline_lines(uidl_body))


def root_state(md_root):
    """{name: (size, mtime_ns)} of the Maildir root's files (gannet.index, dovecot-uidlist ...)."""
    out = {}
    for n in sorted(os.listdir(md_root)):
        st = os.lstat(os.path.join(md_root, n))
        out[n] = (st.st_size, st.st_mtime_ns, st.st_mode)
    return out


def tree_state(md_root):
    out = {}
    for sub in ("new", "cur", "tmp"):
        p = os.path.join(md_root, sub)
        out[sub] = sorted(os.listdir(p)) if os.path.isdir(p) else None
    out["root"] = root_state(md_root)
    return out


T0 = 1700001000  # delivery times: names and mtimes agree, as with a real MDA


def wname(seq, data, host="mx.gannet.test", s=False, w=False):
    """A Dovecot-style name: time.MmicroPpid.host[,S=size][,W=crlf size]."""
    n = "%d.M%dP%d.%s" % (T0 + seq, 100000 + seq, 4000 + seq, host)
    if s:
        n += ",S=%d" % len(data)
    if w:
        n += ",W=%d" % len(g.to_wire(data))
    return n


def msg(i, body=b"", extra_headers=b""):
    return (b"From: sender%d@example.org\nTo: alice@example.org\nSubject: message %d\n" % (i, i)
            + extra_headers + b"Message-ID: <%d@example.org>\n\n" % i
            + (body or b"Body of message %d.\n" % i))


MIX = [
    # (data, subdir, info, with ,S=, with ,W=)
    (msg(1), "new", "", False, False),
    (msg(2, b"Dots:\n.hidden line\n..two dots\n.\nend\n"), "new", "", True, False),
    (msg(3, b"x" * 3000 + b"\n" + b"long line above\n"), "cur", ":2,S", True, True),
    (msg(4).replace(b"\n", b"\r\n"), "cur", ":2,RS", True, True),
    (msg(5, b"line\n" * 400), "cur", ":2,", False, False),
    (msg(6), "cur", "", False, False),  # cur/ without the ":2," part
    (msg(7, b"Seen and flagged.\n"), "cur", ":2,FS", False, True),
    (msg(8, b"Unicode \xc3\xa9t\xc3\xa9 and a tab\there.\n"), "new", "", True, True),
]


def deliver_mix(env):
    names = []
    for i, (data, sub, info, s, w) in enumerate(MIX, 1):
        name = wname(i, data, s=s, w=w) + info
        names.append(env.deliver(data, name=name, subdir=sub, mtime=T0 + i))
    return names


def assert_unique(pairs):
    uidls = [u for _n, u in pairs]
    assert len(set(uidls)) == len(uidls), uidls


# ---------------------------------------------------------------------------------------------
# uidl_source = dovecot: pop3_uidl_format = %08Xu%08Xv


def test_dovecot_mode_identical(env):
    """Dovecot assigns UIDLs (first login with poplib); gannetd with uidl_source = dovecot then
    gives byte-identical UIDL and LIST bodies and RETR bodies, before and after Dovecot's Seen
    renames; gannetctl uidl list prints the same lines without writing anything."""
    deliver_mix(env)
    dc = env.dovecot()
    assert poplib_first_login(dc.port) == len(MIX)
    md_root = env.md.root
    uidlist = open(os.path.join(md_root, "dovecot-uidlist"), "rb").read()
    assert uidlist.startswith(b"3 V"), uidlist[:40]
    d_uidl, d_list, d_bodies, _ = listing(dc.port)  # QUIT: Dovecot marks all eight Seen
    pairs = uidl_pairs(d_uidl)
    assert [n for n, _u in pairs] == [str(i) for i in range(1, len(MIX) + 1)]
    for _n, u in pairs:  # %08Xu%08Xv: 16 lower-case hex digits
        assert len(u) == 16 and all(ch in "0123456789abcdef" for ch in u), u
    assert_unique(pairs)
    # Every RETR'd message is now in cur/ with S (Dovecot's Seen renames at QUIT).
    assert os.listdir(os.path.join(md_root, "new")) == []

    gs = env.gannet
    gs.settings["uidl_source"] = "dovecot"
    gs.write_config()
    # gannetctl before gannetd ever saw the Maildir: same lines, nothing written.
    before = tree_state(md_root)
    private = tempfile.mkdtemp(prefix="gn-dcu-tmp-", dir="/tmp")
    try:
        assert ctl_uidl_list(gs, tmpdir=private) == as_ctl_output(d_uidl)
        assert os.listdir(private) == []  # its private scan directory is gone
    finally:
        os.rmdir(private)
    assert tree_state(md_root) == before
    assert "gannet.index" not in os.listdir(md_root)

    gs.start()
    g_uidl, g_list, g_bodies, _ = listing(gs.port)
    assert g_uidl == d_uidl
    assert g_list == d_list
    assert len(g_bodies) == len(d_bodies) == len(MIX)
    for i, (gb, db) in enumerate(zip(g_bodies, d_bodies), 1):
        assert gb == db, "RETR %d differs" % i
    # And what the test itself expects, independently of both servers.
    by_subject = {}
    for data, *_ in MIX:
        by_subject[g.retr_wire(data)] = True
    assert all(b in by_subject for b in g_bodies)
    # gannetd wrote its index now; gannetctl (reading it) still agrees and changes nothing.
    before = root_state(md_root)
    assert ctl_uidl_list(gs) == as_ctl_output(d_uidl)
    assert root_state(md_root) == before


def test_dovecot_mode_new_mail(env):
    """Mail delivered after Dovecot wrote dovecot-uidlist gets a gannetd UIDL that collides with
    none of Dovecot's, even when its name is one of them; the UIDLs gannetd gave stay the same
    after Dovecot later numbers the new mail."""
    deliver_mix(env)
    dc = env.dovecot()
    poplib_first_login(dc.port)
    d_uidl, _l, _b, _ = listing(dc.port, retr=False)
    old = uidl_pairs(d_uidl)

    gs = env.gannet
    gs.settings["uidl_source"] = "dovecot"
    gs.start()
    g_uidl, _l, _b, _ = listing(gs.port, retr=False)
    assert g_uidl == d_uidl

    # Two deliveries Dovecot has not seen: an ordinary one, and one whose unique part is the
    # UIDL Dovecot gave message 1 (a name an MDA would never make, but nothing forbids it).
    plain = env.deliver(msg(20), name=wname(20, msg(20)), mtime=T0 + 20)
    clash = env.deliver(msg(21), name=old[0][1], mtime=T0 + 21)
    g2, _l, _b, _ = listing(gs.port, retr=False)
    pairs = uidl_pairs(g2)
    assert pairs[: len(old)] == old
    assert len(pairs) == len(old) + 2
    assert pairs[len(old)] == (str(len(old) + 1), plain)  # not in dovecot-uidlist: Gannet's
    assert pairs[len(old) + 1][1] != clash and pairs[len(old) + 1][1].startswith("H")
    assert len(pairs[len(old) + 1][1]) == 41
    assert_unique(pairs)
    assert ctl_uidl_list(gs) == as_ctl_output(g2)

    # Dovecot now numbers the two new messages; gannetd's clients keep the UIDLs they saw.
    poplib_first_login(dc.port)
    d2, _l, _b, _ = listing(dc.port, retr=False)
    dpairs = uidl_pairs(d2)
    assert dpairs[: len(old)] == old and len(dpairs) == len(old) + 2
    g3, _l, _b, _ = listing(gs.port, retr=False)
    assert g3 == g2
    assert ctl_uidl_list(gs) == as_ctl_output(g2)


def test_gannetctl_no_lock(env):
    """gannetctl uidl list neither waits for nor takes the maildrop lock: it answers while a
    POP3 session holds the maildrop, and that session's UIDLs are what it prints."""
    deliver_mix(env)
    dc = env.dovecot()
    poplib_first_login(dc.port)
    gs = env.gannet
    gs.settings["uidl_source"] = "dovecot"
    gs.start()
    uidl, _l, _b, conn = listing(gs.port, retr=False, quit=False)
    try:
        assert ctl_uidl_list(gs) == as_ctl_output(uidl)
        st, again = conn.cmd_multi("UIDL")
        assert st.startswith(b"+OK") and again == uidl
    finally:
        conn.quit()
    # The session's lock is free again: another login succeeds at once.
    assert listing(gs.port, retr=False)[0] == uidl


def _reordered(env):
    """Four messages whose mtimes run against their names (restored from a backup, copied
    without -t ...): Dovecot gives UIDs in name order; gannetd numbers by mtime. Returns both
    servers' (UIDL, LIST, RETR bodies)."""
    for i, (data, sub, info, s, w) in enumerate(MIX[:4], 1):
        env.deliver(data, name=wname(i, data, s=s, w=w) + info, subdir=sub, mtime=T0 + 100 - i)
    dc = env.dovecot()
    poplib_first_login(dc.port)
    d = listing(dc.port, quit=False)
    d[3].cmd("RSET")
    d[3].quit()  # no Seen renames
    gs = env.gannet
    gs.settings["uidl_source"] = "dovecot"
    gs.start()
    return d[:3], listing(gs.port)[:3]


def _by_uidl(uidl, lst, bodies):
    """{UIDL: (LIST size, RETR body)}: what a client keyed on UIDLs stores."""
    sizes = dict(ln.split(b" ") for ln in g.multiline_lines(lst))
    out = {}
    for (n, u), body in zip(uidl_pairs(uidl), bodies):
        out[u] = (sizes[n.encode()], body)
    return out


def test_dovecot_mode_mtime_order_same_messages(env):
    """Whatever the numbering, every UIDL names the same message with the same size in both
    servers: a client keyed on UIDLs downloads nothing twice."""
    d, gn = _reordered(env)
    assert len(d[2]) == 4
    assert _by_uidl(*gn) == _by_uidl(*d)


def test_dovecot_mode_mtime_order_same_numbers(env):
    """With mtimes against Dovecot's UID order, uidl_source = dovecot numbers the messages by
    Dovecot UID as Dovecot does: the UIDL listings are byte-identical."""
    d, gn = _reordered(env)
    assert gn[0] == d[0]
    assert gn[1] == d[1]


# ---------------------------------------------------------------------------------------------
# uidl_source = maildir: pop3_uidl_format = %f (the base name, Courier/qmail style)


def test_maildir_mode_identical(env):
    """Dovecot's %f is the file name before ":2,", ",S=" and ",W=" included: gannetd's maildir
    source gives the same UIDLs, LIST and RETR bodies."""
    deliver_mix(env)
    dc = env.dovecot(uidl_format="%f")
    poplib_first_login(dc.port)
    d_uidl, d_list, d_bodies, _ = listing(dc.port)
    pairs = uidl_pairs(d_uidl)
    assert any(",S=" in u for _n, u in pairs) and any(",W=" in u for _n, u in pairs)
    assert not any(":" in u for _n, u in pairs)
    assert_unique(pairs)

    gs = env.gannet
    gs.settings["uidl_source"] = "maildir"
    gs.write_config()
    assert ctl_uidl_list(gs) == as_ctl_output(d_uidl)
    gs.start()
    g_uidl, g_list, g_bodies, _ = listing(gs.port)
    assert g_uidl == d_uidl
    assert g_list == d_list
    assert g_bodies == d_bodies


# ---------------------------------------------------------------------------------------------
# uidl_source = x-uidl: pop3_reuse_xuidl = yes


def test_xuidl_mode_identical(env):
    """Messages carrying an X-UIDL header (qpopper's) keep it in both servers: gannetd's x-uidl
    source and Dovecot's pop3_reuse_xuidl agree, header name in any case, leading blanks
    dropped. The message without the header has a name without ',' so that Dovecot's %f fallback
    and Gannet's unique part are the same string. One difference, asserted: Dovecot keeps trailing
    blanks of the value (a UIDL with spaces, against RFC 1939 §7); gannetd trims them, which is
    what a client that splits the UIDL line on blanks has stored."""
    heads = [b"X-UIDL: 8c2f1a0d3e4b5a69\n", b"x-uidl:   a1b2c3d4e5f60718\n",
             b"X-UIDL: <1234.5678@pop.example.org>\n", b"", b"X-UIDL: trailing-blanks  \n"]
    for i, h in enumerate(heads, 1):
        data = msg(30 + i, extra_headers=h)
        env.deliver(data, name=wname(30 + i, data), mtime=T0 + 30 + i,
                    subdir="new" if i % 2 else "cur")
    dc = env.dovecot(uidl_format="%f", reuse_xuidl=True)
    poplib_first_login(dc.port)
    d_uidl, d_list, d_bodies, _ = listing(dc.port)
    dlines = g.multiline_lines(d_uidl)
    assert dlines == [b"1 8c2f1a0d3e4b5a69", b"2 a1b2c3d4e5f60718",
                      b"3 <1234.5678@pop.example.org>", b"4 " + wname(34, msg(34)).encode(),
                      b"5 trailing-blanks  "]

    gs = env.gannet
    gs.settings["uidl_source"] = "x-uidl"
    gs.write_config()
    want = dlines[:4] + [b"5 trailing-blanks"]
    assert ctl_uidl_list(gs) == b"".join(ln + b"\n" for ln in want)
    gs.start()
    g_uidl, g_list, g_bodies, _ = listing(gs.port)
    assert g.multiline_lines(g_uidl) == want
    assert g_list == d_list
    assert g_bodies == d_bodies


# ---------------------------------------------------------------------------------------------
# gannetctl uidl list on its own


def test_gannetctl_uidl_errors(gannet, ctl_env):
    """Clear errors and exit codes: unknown user, missing Maildir (not created), bad user name,
    unknown --source; --source overrides the configured source."""
    gs = gannet(users=("bob",), start=False)
    gs.add_user("carol", make_maildir=False)
    gs.write_config()
    out = ctl(gs, "uidl", "list", "zed")
    assert out.returncode == 1
    assert out.stdout == b""
    assert b"unknown user 'zed'" in out.stderr

    carol = os.path.join(gs.users["carol"][1], "Maildir")
    out = ctl(gs, "uidl", "list", "carol")
    assert out.returncode == 1
    assert (b"carol: Maildir %s does not exist" % carol.encode()) in out.stderr
    assert not os.path.exists(carol)

    out = ctl(gs, "uidl", "list", "../etc")
    assert out.returncode == 1 and b"bad user name" in out.stderr

    out = ctl(gs, "uidl", "list", "bob", "--source", "courier")
    assert out.returncode == 2 and b"unknown UIDL source 'courier'" in out.stderr

    md = gs.maildir("bob")
    a = md.deliver(b"Subject: a\n\nA\n", name="1700000001.A1.host,S=14")
    b = md.deliver(b"Subject: b\n\nB\n", name="1700000002.B2.host", subdir="cur", info=":2,S")
    assert ctl_uidl_list(gs, "bob") == b"1 1700000001.A1.host\n2 1700000002.B2.host\n"
    out = ctl(gs, "uidl", "list", "bob", "--source", "maildir")
    assert out.returncode == 0
    assert out.stdout == ("1 %s\n2 %s\n" % (a, b[: -len(":2,S")])).encode()
    # -c after the command is the same as before it.
    out = subprocess.run([g.GANNETCTL, "uidl", "list", "bob", "-c", gs.conf_path],
                         capture_output=True, timeout=g.t(30), env=g.run_env())
    assert out.returncode == 0 and out.stdout == b"1 1700000001.A1.host\n2 1700000002.B2.host\n"
    assert "gannet.index" not in os.listdir(md.root)

