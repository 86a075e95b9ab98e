"""AUTHORIZATION state: USER/PASS, locking, response codes, password schemes.

S-004, S-010, S-019..S-028, S-032, S-034, S-035, S-071, S-077, S-124, S-125.
"""

import os
import re
import socket
import time

import pytest

import gannettest as g

RESP_CODE = re.compile(rb"^-ERR \[[\x21-\x2e\x30-\x5c\x5e-\x7f]+(/[\x21-\x2e\x30-\x5c\x5e-\x7f]+)*\]")


def assert_alive(c):
    """The session is still usable in AUTHORIZATION (CAPA answers)."""
    assert c.capa()[0] == "TOP"


def test_s025_user_reply_same_for_known_and_unknown(server):
    """S-025: USER gives the same +OK for an existing and a missing user."""
    c = server.connect()
    a = c.cmd("USER alice")
    b = c.cmd("USER nosuchuser")
    assert a.startswith(b"+OK") and a == b, (a, b)


@pytest.mark.parametrize("name", ["a/b", "../x", "..", "a..b", "a\x01b", "a\x7fb", "x" * 257],
                         ids=["slash", "dotdot-x", "dotdot", "inner-dotdot", "ctl", "del", "257"])
def test_user_invalid_names_rejected(server, name):
    """Invalid user names (/, .., control chars, > 256 bytes) get -ERR; the session goes on."""
    c = server.connect()
    r = c.cmd("USER " + name)
    assert r.startswith(b"-ERR"), r
    assert c.cmd("PASS whatever-pass").startswith(b"-ERR")  # nothing pending
    assert_alive(c)


def test_user_dotdot_x_creates_nothing_outside(server):
    """User `../x`: refused, and nothing appears next to the homes."""
    before = sorted(os.listdir(os.path.dirname(server.users["alice"][1])))
    c = server.connect()
    assert c.cmd("USER ../x").startswith(b"-ERR")
    assert c.cmd("PASS " + server.password("alice")).startswith(b"-ERR")
    c.quit()
    assert sorted(os.listdir(os.path.dirname(server.users["alice"][1]))) == before


def test_s004_255_octet_user_line_accepted(server):
    """S-004: USER + 248-character name = 255 octets with CRLF -> a normal reply. (The checklist
    says 249 characters, but 'USER ' + 249 + CRLF is 256 octets.)"""
    c = server.connect()
    line = "USER " + "u" * 248
    assert len(line) + 2 == 255
    assert c.cmd(line).startswith(b"+OK")
    # 256 octets: over the limit -> -ERR, and the session keeps working.
    assert c.cmd("USER " + "u" * 249).startswith(b"-ERR")
    assert_alive(c)


def test_s005_255_octet_pass_line(gannet):
    """S-005: the longest PASS line (255 octets with CRLF) is parsed as a password, both for a
    wrong password ([AUTH], not a length error) and for a user whose password is that long."""
    srv = gannet(users=(), start=False)
    pw = "P" + "w" * 247
    assert len("PASS " + pw) + 2 == 255
    srv.add_user("longpw", password=pw)
    srv.start()
    c = srv.connect()
    c.cmd("USER longpw")
    assert c.cmd("PASS " + "x" * 248).startswith(b"-ERR [AUTH]")
    c.login("longpw", pw)
    assert c.cmd("STAT") == b"+OK 0 0\r\n"


def test_s027_pass_without_user(server):
    """S-027: PASS without a preceding USER -> -ERR."""
    c = server.connect()
    assert c.cmd("PASS " + server.password("alice")).startswith(b"-ERR")
    c.login("alice", server.password("alice"))


def test_s027_pending_user_forgotten_after_any_pass(server):
    """S-027: USER a, PASS bad, PASS good -> the second PASS fails (USER must be sent again)."""
    c = server.connect()
    assert c.cmd("USER alice").startswith(b"+OK")
    assert c.cmd("PASS Bad-password-1").startswith(b"-ERR [AUTH]")
    r = c.cmd("PASS " + server.password("alice"))
    assert r.startswith(b"-ERR"), r
    c.login("alice", server.password("alice"))  # S-022: a retry after failures works


def test_s022_retry_after_wrong_password(server):
    """S-022: wrong password, then USER/PASS again with correct values -> +OK."""
    c = server.connect()
    assert c.cmd("USER alice").startswith(b"+OK")
    assert c.cmd("PASS Bad-password-2").startswith(b"-ERR [AUTH]")
    c.login("alice", server.password("alice"))
    assert re.match(rb"^\+OK 0 0\r\n$", c.cmd("STAT"))


def test_s034_s035_auth_code_same_for_unknown_user_and_wrong_password(server):
    """S-034/S-035: both failures carry [AUTH] and the same text (no user enumeration)."""
    c = server.connect()
    c.cmd("USER alice")
    wrong = c.cmd("PASS Bad-password-3")
    c.cmd("USER nosuchuser")
    unknown = c.cmd("PASS Bad-password-3")
    assert wrong.startswith(b"-ERR [AUTH]"), wrong
    assert RESP_CODE.match(wrong)                  # S-124 grammar
    assert wrong == unknown, (wrong, unknown)


def test_successful_pass_enters_transaction(server):
    c = server.connect()
    assert c.cmd("STAT").startswith(b"-ERR")      # S-010 before login
    c.login("alice", server.password("alice"))
    assert c.cmd("STAT") == b"+OK 0 0\r\n"


def test_s028_password_with_spaces(gannet):
    """S-028: the PASS argument is everything after 'PASS ', inner spaces included."""
    srv = gannet(users=(), start=False)
    srv.add_user("spacey", password="Pw with  two spaces")
    srv.start()
    c = srv.connect()
    c.login("spacey", "Pw with  two spaces")
    c2 = srv.connect()
    c2.cmd("USER spacey")
    assert c2.cmd("PASS Pw with two spaces").startswith(b"-ERR [AUTH]")


def test_s028_password_with_leading_and_trailing_space(gannet):
    """S-028: leading/trailing spaces of the PASS argument belong to the password."""
    srv = gannet(users=(), start=False)
    srv.add_user("edgy", password=" Pw-edge-spaces ")
    srv.start()
    c = srv.connect()
    c.cmd("USER edgy")
    assert c.cmd("PASS Pw-edge-spaces").startswith(b"-ERR [AUTH]")
    c.login("edgy", " Pw-edge-spaces ")


@pytest.mark.parametrize("isolation", ["shared", "per-connection"])
def test_s019_s021_second_login_in_use_then_close(server):
    """S-019/S-021: a second concurrent login with the right password -> -ERR [IN-USE], close."""
    a = server.login("alice")
    b = server.connect()
    assert b.cmd("USER alice").startswith(b"+OK")
    r = b.cmd("PASS " + server.password("alice"))
    assert r.startswith(b"-ERR [IN-USE]"), r
    assert RESP_CODE.match(r)
    assert b.wait_closed(g.t(5)) == b""
    assert a.cmd("STAT") == b"+OK 0 0\r\n"      # the holder is not disturbed


def test_s021_second_login_wrong_password_is_auth_not_in_use(server):
    """S-021: never [IN-USE] before the credentials were found valid."""
    server.login("alice")
    b = server.connect()
    b.cmd("USER alice")
    r = b.cmd("PASS Bad-password-4")
    assert r.startswith(b"-ERR [AUTH]"), r


@pytest.mark.parametrize("isolation", ["shared", "per-connection"])
def test_s071_lock_released_after_quit(server):
    """S-071: after QUIT, a new login succeeds at once."""
    server.maildir("alice").deliver(g.header("one") + b"body\n")
    a = server.login("alice")
    assert a.quit().startswith(b"+OK")
    b = server.login("alice")
    assert b.cmd("STAT").startswith(b"+OK 1 ")


@pytest.mark.parametrize("how", ["close", "rst"])
@pytest.mark.parametrize("isolation", ["shared", "per-connection"])
def test_s077_lock_released_after_drop(server, how):
    """S-077: the lock goes away when the connection drops without QUIT (bounded wait)."""
    a = server.login("alice")
    a.close() if how == "close" else a.reset()
    deadline = time.monotonic() + g.t(3)
    while True:
        c = server.connect()
        c.cmd("USER alice")
        r = c.cmd("PASS " + server.password("alice"))
        if r.startswith(b"+OK"):
            break
        assert r.startswith(b"-ERR [IN-USE]"), r
        c.close()
        assert time.monotonic() < deadline, "lock still held %.0fs after the drop" % g.t(3)
        time.sleep(0.1)


def test_s024_quit_in_authorization(server):
    """S-024: USER a, QUIT -> +OK, close, maildrop unchanged."""
    md = server.maildir("alice")
    md.deliver(g.header("keep") + b"x\n")
    before = md.files()
    c = server.connect()
    c.cmd("USER alice")
    assert c.cmd("QUIT").startswith(b"+OK")
    assert c.wait_closed(g.t(5)) == b""
    assert md.files() == before


def test_s026_s010_auth_commands_after_login(server):
    """S-026/S-010/S-078: USER, PASS, APOP, AUTH and STLS after login -> -ERR; session intact."""
    c = server.login("alice")
    for cmd in ("USER alice", "PASS " + server.password("alice"), "APOP alice "
                "c4c9334bac560ecc979e58001b3e22fb", "AUTH PLAIN", "AUTH", "STLS"):
        r = c.cmd(cmd)
        assert r.startswith(b"-ERR"), (cmd, r)
    assert c.cmd("STAT") == b"+OK 0 0\r\n"


def test_s010_transaction_commands_before_login(server):
    """S-010: STAT, LIST, RETR, DELE, UIDL, TOP, RSET, NOOP before login -> -ERR."""
    server.maildir("alice").deliver(g.header("x") + b"x\n")
    c = server.connect()
    for cmd in ("STAT", "LIST", "LIST 1", "RETR 1", "DELE 1", "UIDL", "UIDL 1", "TOP 1 0",
                "RSET", "NOOP"):
        r = c.cmd(cmd)
        assert r.startswith(b"-ERR"), (cmd, r)
        assert c.read_available(0.05) == b"", cmd  # no multi-line body follows
    c.cmd("USER alice")
    assert c.cmd("STAT").startswith(b"-ERR")   # still AUTHORIZATION
    c.login("alice", server.password("alice"))
    assert c.cmd("STAT").startswith(b"+OK 1 ")  # and nothing was deleted


def test_s032_plaintext_refused_without_tls_when_untrusted(gannet):
    """S-032: trusted_networks empty -> USER before STLS is refused with [AUTH]; after STLS the
    login works. USER sent in the clear is not remembered across STLS (S-082)."""
    srv = gannet(trusted_networks="")
    c = srv.connect()
    r = c.cmd("USER alice")
    assert r.startswith(b"-ERR [AUTH]"), r
    assert c.cmd("PASS " + srv.password("alice")).startswith(b"-ERR")
    assert c.cmd("STLS").startswith(b"+OK")
    c.starttls(srv.tls_context())
    c.login("alice", srv.password("alice"))
    assert c.cmd("STAT") == b"+OK 0 0\r\n"


def test_s032_untrusted_implicit_tls_allows_login(gannet):
    srv = gannet(trusted_networks="")
    c = srv.login("alice", tls=True)
    assert c.cmd("STAT") == b"+OK 0 0\r\n"


def test_plaintext_allowed_when_disable_plaintext_auth_no(gannet):
    srv = gannet(trusted_networks="", disable_plaintext_auth="no")
    c = srv.login("alice")
    assert c.cmd("STAT") == b"+OK 0 0\r\n"


@pytest.mark.parametrize("scheme", ["PLAIN", "SHA512-CRYPT", "SHA256-CRYPT", "BLF-CRYPT", "CRYPT",
                                    "ARGON2ID"])
def test_password_schemes(gannet, scheme):
    """Each supported hash scheme: right password -> +OK, wrong -> -ERR [AUTH]."""
    if scheme == "ARGON2ID" and not os.access(g.GANNETCTL, os.X_OK):
        pytest.fail("gannetctl is needed to make an ARGON2ID hash")
    srv = gannet(users=(), start=False)
    pw = srv.add_user("hashy", scheme=scheme)
    srv.start()
    c = srv.connect()
    c.cmd("USER hashy")
    assert c.cmd("PASS Bad-password-5").startswith(b"-ERR [AUTH]")
    c.login("hashy", pw)
    assert c.cmd("STAT") == b"+OK 0 0\r\n"


def test_maildir_created_when_missing(gannet):
    """The server creates a missing Maildir when its parent (the home) exists."""
    srv = gannet(users=(), start=False)
    srv.add_user("fresh", make_maildir=False)
    os.makedirs(srv.users["fresh"][1])
    srv.start()
    c = srv.login("fresh")
    assert c.cmd("STAT") == b"+OK 0 0\r\n"
    c.quit()
    md = os.path.join(srv.users["fresh"][1], "Maildir")
    for d in ("new", "cur", "tmp"):
        assert os.path.isdir(os.path.join(md, d)), d


@pytest.mark.parametrize("problem", ["home-missing", "home-is-file", "maildir-is-file"])
def test_s034_maildir_unavailable_sys_code_then_close(gannet, problem):
    """S-034: a maildrop the server cannot open -> -ERR [SYS/PERM] or [SYS/TEMP] at PASS, then
    the connection closes. S-020: once fixed, the next login works (no stale lock)."""
    srv = gannet(users=(), start=False)
    srv.add_user("broken", make_maildir=False)
    home = srv.users["broken"][1]
    os.makedirs(os.path.dirname(home), exist_ok=True)
    if problem == "home-is-file":
        open(home, "w").close()
    elif problem == "maildir-is-file":
        os.makedirs(home)
        open(os.path.join(home, "Maildir"), "w").close()
    srv.start()
    c = srv.connect()
    c.cmd("USER broken")
    r = c.cmd("PASS " + srv.password("broken"))
    assert r.startswith(b"-ERR [SYS/PERM]") or r.startswith(b"-ERR [SYS/TEMP]"), r
    assert RESP_CODE.match(r)
    assert c.wait_closed(g.t(5)) == b""
    # S-020: fix it; the next login must not see a stale lock.
    if problem == "home-is-file":
        os.unlink(home)
    elif problem == "maildir-is-file":
        os.unlink(os.path.join(home, "Maildir"))
    g.Maildir(os.path.join(home, "Maildir"))
    c = srv.login("broken")
    assert c.cmd("STAT") == b"+OK 0 0\r\n"


def test_s125_no_reply_text_starts_with_bracket_unless_code(server):
    """S-125: with RESP-CODES advertised, free text never starts with '['; codes parse (S-124)."""
    server.maildir("alice").deliver(g.header("x") + b"x\n")
    c = server.connect()
    replies = [c.greeting]
    for cmd in ("FOO", "STAT", "USER ../x", "PASS x", "USER alice", "PASS Bad-password-6",
                "USER alice"):
        replies.append(c.cmd(cmd))
    replies.append(c.cmd("PASS " + server.password("alice")))
    for cmd in ("STAT", "LIST 9", "RETR 0", "DELE 1", "DELE 1", "RSET", "NOOP", "USER x", "FOO"):
        replies.append(c.cmd(cmd))
        c.read_available(0.02)
    replies.append(c.cmd("QUIT"))
    for r in replies:
        m = re.match(rb"^(\+OK|-ERR)( (.*))?\r\n$", r, re.S)
        assert m, r
        text = m.group(3) or b""
        if text.startswith(b"["):
            assert RESP_CODE.match(b"-ERR " + text), r


def test_gannetctl_user_lifecycle(gannet, ctl_env):
    """gannetctl end to end: add (login works), passwd (old fails, new works), list, del."""
    import subprocess
    srv = gannet(users=(), start=False)
    srv.start()
    home = os.path.join(srv.base, "home", "carol")
    os.makedirs(home)
    pw1, pw2 = "Ledger-Pylon-first-1", "Ledger-Pylon-second-2"  # strong for passwdqc
    srv.secrets.update([pw1, pw2])

    def ctl(*args, stdin=None):
        return subprocess.run([g.GANNETCTL, "-f", srv.userdb] + list(args), input=stdin,
                              capture_output=True, timeout=g.t(30), env=g.run_env())

    r = ctl("user", "add", "carol", "--password-stdin", "--home", home, stdin=pw1.encode() + b"\n")
    assert r.returncode == 0, r
    assert pw1.encode() not in r.stdout + r.stderr
    c = srv.connect()
    c.login("carol", pw1)
    assert c.cmd("STAT") == b"+OK 0 0\r\n"
    c.quit()

    r = ctl("user", "list")
    assert r.returncode == 0 and b"carol" in r.stdout, r

    r = ctl("user", "passwd", "carol", "--password-stdin", stdin=pw2.encode() + b"\n")
    assert r.returncode == 0, r
    c = srv.connect()
    c.cmd("USER carol")
    assert c.cmd("PASS " + pw1).startswith(b"-ERR [AUTH]")
    c.login("carol", pw2)
    c.quit()

    r = ctl("user", "del", "carol")
    assert r.returncode == 0, r
    r = ctl("user", "list")
    assert b"carol" not in r.stdout, r
    c = srv.connect()
    c.cmd("USER carol")
    assert c.cmd("PASS " + pw2).startswith(b"-ERR [AUTH]")
    with open(srv.userdb, "rb") as f:
        assert pw1.encode() not in f.read()    # hashed, not stored in the clear


def test_gannetctl_pw_argon2id(ctl_env):
    import subprocess
    r = subprocess.run([g.GANNETCTL, "pw", "-s", "ARGON2ID", "--password-stdin"],
                       input=b"Pw-hash-only-9\n", capture_output=True, timeout=g.t(30),
                       env=g.run_env())
    assert r.returncode == 0, r
    line = r.stdout.decode().strip()
    assert re.match(r"^\{ARGON2ID\}\$argon2id\$", line), line
    assert "Pw-hash-only-9" not in line
