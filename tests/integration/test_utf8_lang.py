"""UTF8 and LANG (RFC 6856): S-089, S-127..S-136, over real sockets and with exact bytes."""

import pytest

import gannettest as g

JA_NAME = "\u7530\u4e2d"          # 田中
JA_PW = "\u30d1\u30b9\u30ef\u30fc\u30c9-\u5bc6-9x"  # パスワード-密-9x

LANG_OK_EN = b"+OK en Language changed to English\r\n"
LANG_OK_JA = "+OK ja 言語を日本語に変更しました\r\n".encode()
UTF8_OK = b"+OK UTF-8 mode enabled\r\n"
UTF8_OK_JA = "+OK UTF-8 モードを有効にしました\r\n".encode()

HDR8 = ("From: alice@example.org\nTo: bob@example.org\nSubject: caf\u00e9 \u65e5\u672c\n"
        "Message-ID: <u8@gannet.test>\n\nbody line\n").encode()
BODY8 = b"From: alice@example.org\nSubject: plain\n\nbody caf\xc3\xa9 \xff\n.dot\n"


def ascii_only(data):
    return all(b < 0x80 for b in data)


@pytest.mark.parametrize("isolation", ["shared", "per-connection"])
def test_s128_utf8_in_authorization_only_and_without_arguments(server):
    """S-128: UTF8 -> +OK before login; UTF8 x -> -ERR; after login UTF8 -> -ERR."""
    c = server.connect()
    assert c.cmd("UTF8 x") == b"-ERR UTF8 takes no arguments\r\n"
    assert c.cmd("UTF8") == UTF8_OK
    c.login("alice", server.password("alice"))
    assert c.cmd("UTF8") == b"-ERR Command not valid in this state\r\n"
    assert c.cmd("NOOP") == b"+OK\r\n"
    c.quit()


def test_s089_stls_refused_after_utf8(server):
    """S-089: UTF8, then STLS -> -ERR (and CAPA no longer offers STLS); no TLS starts."""
    c = server.connect()
    assert "STLS" in c.capa()
    assert c.cmd("UTF8") == UTF8_OK
    assert c.cmd("STLS") == b"-ERR STLS is not allowed after UTF8\r\n"
    assert "STLS" not in c.capa()
    assert c.cmd("NOOP") == b"-ERR Command not valid before login\r\n"  # still plaintext POP3


def test_capa_lists_utf8_user_and_lang_in_both_states(server):
    """S-132/S-134: CAPA has "UTF8 USER" and "LANG" before and after login (RFC 6856 §2, §3)."""
    c = server.connect()
    pre = c.capa()
    c.login("alice", server.password("alice"))
    post = c.capa()
    for caps in (pre, post):
        assert "UTF8 USER" in caps and "LANG" in caps
        assert caps.index("UTF8 USER") + 1 == caps.index("LANG")
        assert caps[-1] == "IMPLEMENTATION Gannet"


def test_s132_utf8_user_name_and_password_log_in(gannet):
    """S-132: a UTF-8 user name and password work with USER/PASS, with and without UTF8 (the
    client may use them before UTF8 when UTF8 USER is advertised), and APOP-free AUTH PLAIN."""
    srv = gannet()
    srv.add_user(JA_NAME, password=JA_PW)
    box = srv.maildir(JA_NAME)
    n = len(g.to_wire(b"Subject: hi\n\nhello\n"))
    box.deliver(b"Subject: hi\n\nhello\n")
    c = srv.connect()
    assert c.cmd("USER " + JA_NAME) == b"+OK\r\n"
    assert c.cmd("PASS " + JA_PW) == b"+OK Logged in, 1 messages (%d octets)\r\n" % n
    assert c.cmd("STAT") == b"+OK 1 %d\r\n" % n
    c.quit()
    c = srv.connect()
    assert c.cmd("UTF8") == UTF8_OK
    c.login(JA_NAME, JA_PW)
    c.quit()
    assert "user=" + JA_NAME in srv.log_text()


def test_s132_user_name_is_saslprepped(gannet):
    """S-132 (SHOULD SASLprep USER): a name typed with a soft hyphen (mapped to nothing) and a
    decomposed accent (normalised by NFKC) finds the account stored in prepared form."""
    srv = gannet()
    name = "jos\u00e9"
    pw = srv.add_user(name)
    c = srv.connect()
    assert c.cmd("USER jo\u00ads" + "e\u0301") == b"+OK\r\n"
    assert c.cmd("PASS " + pw).startswith(b"+OK Logged in")
    c.quit()


@pytest.mark.parametrize("name", [b"\xc3\x28", b"a\xc0\xaf", b"a\xed\xa0\x80b", b"\xff",
                                  "a\u200eb".encode(), "a\u0085".encode(),
                                  "\u0627" "1".encode()])
def test_s132_invalid_utf8_and_prohibited_user_names_refused(server, name):
    """S-132: invalid UTF-8 (bad sequence, overlong '/', a surrogate, 0xFF) and SASLprep-
    prohibited characters (U+200E, a C1 control, a bidi violation) in USER -> -ERR."""
    c = server.connect()
    assert c.cmd(b"USER " + name) == b"-ERR Invalid user name\r\n"
    assert c.cmd("PASS x") == b"-ERR USER first\r\n"


def test_s132_nul_in_user_refused(server):
    """S-132: U+0000 in USER -> -ERR (the line itself is refused)."""
    c = server.connect()
    assert c.cmd(b"USER a\x00b") == b"-ERR Invalid characters in command\r\n"


@pytest.mark.parametrize("pw", [b"p\xc3\x28w", "p\u200ew".encode(), b"pw\xc0\x80"])
def test_s132_invalid_password_refused_before_auth(server, pw):
    """S-132: PASS with invalid UTF-8 or a prohibited character -> -ERR, nothing is checked."""
    c = server.connect()
    assert c.cmd("USER alice") == b"+OK\r\n"
    assert c.cmd(b"PASS " + pw) == b"-ERR Password is not UTF-8 that SASLprep accepts\r\n"
    assert c.cmd("PASS " + server.password("alice")) == b"-ERR USER first\r\n"
    c.login("alice", server.password("alice"))


def test_gannetctl_user_add_with_utf8_name(gannet, ctl_env):
    """gannetctl user add takes a UTF-8 name in SASLprep form and refuses an unprepared one."""
    import subprocess
    srv = gannet(start=False)
    srv.write_users()
    pw = "Kx9!vQ2#mZ7@tL4w"

    def add(name):
        return subprocess.run([g.GANNETCTL, "-f", srv.userdb, "user", "add", name,
                               "--password-stdin"], input=(pw + "\n").encode(),
                              capture_output=True, timeout=g.t(30), env=g.run_env())

    r = add(JA_NAME)
    assert r.returncode == 0, r
    with open(srv.userdb, "rb") as f:
        assert (JA_NAME + ":").encode() in f.read()
    assert add("a\u200eb").returncode != 0
    assert add("e\u0301").returncode != 0


def test_s129_no_8bit_in_replies_without_utf8(server):
    """S-129: without UTF8, every reply of a session is ASCII (LANG listing included), and
    Japanese cannot be selected."""
    server.maildir("alice").deliver(b"Subject: a\n\nb\n")
    c = server.connect()
    out = [c.greeting, c.cmd("LANG ja"), c.cmd("FOO"), c.cmd("USER")]
    status, body = c.cmd_multi("LANG")
    out += [status, body]
    assert body == b"en English\r\nja\r\n.\r\n"
    c.login("alice", server.password("alice"))
    for cmd in ("STAT", "LIST 9", "DELE 1", "RETR 1", "RSET", "LANG ja", "TOP 1 x", "QUIT"):
        out.append(c.cmd(cmd))
    for line in out:
        assert ascii_only(line), line
    assert out[1] == b"-ERR This language needs UTF-8 mode: send UTF8 first\r\n"


def test_s133_s134_s135_lang_list_select_invalid_default(server):
    """S-134: LANG lists "tag description" lines; S-133: LANG ja -> +OK ja <text>, LANG xx ->
    -ERR in the language kept; S-135: LANG * -> +OK en."""
    c = server.connect()
    assert c.cmd("UTF8") == UTF8_OK
    status, body = c.cmd_multi("LANG")
    assert status == b"+OK Language listing follows\r\n"
    assert body == "en English\r\nja 日本語\r\n.\r\n".encode()
    for ln in g.multiline_lines(body):
        assert g.re.match(rb"^[A-Za-z0-9-]+( .*)?$", ln), ln
    assert c.cmd("LANG ja") == LANG_OK_JA
    assert c.cmd("LANG xx-nope") == "-ERR 不明な言語か、対応していない言語です\r\n".encode()
    assert c.cmd("LANG en_US") == "-ERR 不明な言語か、対応していない言語です\r\n".encode()
    assert c.cmd("FOO") == "-ERR 不明なコマンドです\r\n".encode()  # still Japanese
    status, body = c.cmd_multi("LANG")
    assert status == "+OK 言語の一覧です\r\n".encode()
    assert c.cmd("LANG *") == LANG_OK_EN
    assert c.cmd("FOO") == b"-ERR Unknown command\r\n"
    assert c.cmd("LANG JA-jp") == LANG_OK_JA  # RFC 4647 lookup, case-insensitive
    assert c.cmd("LANG a b") == "-ERR 使い方: LANG [language]\r\n".encode()


def _ja_session(server, user="alice"):
    c = server.connect()
    assert c.cmd("UTF8") == UTF8_OK
    assert c.cmd("LANG ja") == LANG_OK_JA
    return c


def test_s133_japanese_texts_before_login(server):
    """S-133: after LANG ja every human-readable text is Japanese; response codes stay exact."""
    c = _ja_session(server)
    assert c.cmd("UTF8") == UTF8_OK_JA
    assert c.cmd("STAT") == "-ERR このコマンドはログインの前には使えません\r\n".encode()
    assert c.cmd("PASS x") == "-ERR 先に USER を送ってください\r\n".encode()
    assert c.cmd("USER") == "-ERR 使い方: USER name\r\n".encode()
    assert c.cmd("USER a/b") == "-ERR ユーザー名が正しくありません\r\n".encode()
    assert c.cmd("AUTH FOO") == "-ERR 対応していない認証方式です\r\n".encode()
    assert c.cmd("APOP a " + "0" * 32) == "-ERR APOP は提供していません\r\n".encode()
    assert c.cmd("CAPA x") == "-ERR CAPA に引数は要りません\r\n".encode()
    status, _ = c.cmd_multi("CAPA")
    assert status == "+OK 機能の一覧です\r\n".encode()
    status, _ = c.cmd_multi("AUTH")
    assert status == "+OK 認証方式の一覧です\r\n".encode()
    assert c.cmd("USER alice") == b"+OK\r\n"
    assert c.cmd("PASS wrong-password") == "-ERR [AUTH] 認証に失敗しました\r\n".encode()
    assert c.cmd("QUIT") == "+OK さようなら\r\n".encode()


@pytest.mark.parametrize("isolation", ["shared", "per-connection"])
@pytest.mark.parametrize("tls", [False, True])
def test_s133_language_survives_login(server, tls):
    """S-133: the language and UTF-8 mode travel with the handover (plain socket and TLS relay)
    to the mail process; counts like "+OK 2 45" stay machine-readable."""
    box = server.maildir("alice")
    m1, m2 = b"Subject: a\n\none\n", b"Subject: b\n\ntwo\n"
    box.deliver(m1)
    box.deliver(m2)
    total = len(g.to_wire(m1)) + len(g.to_wire(m2))
    c = server.connect(tls=tls)
    assert c.cmd("UTF8") == UTF8_OK
    assert c.cmd("LANG ja") == LANG_OK_JA
    assert c.cmd("USER alice") == b"+OK\r\n"
    r = c.cmd("PASS " + server.password("alice"))
    assert r == ("+OK ログインしました。2 件のメッセージ (%d オクテット)\r\n" % total).encode()
    assert c.cmd("STAT") == b"+OK 2 %d\r\n" % total
    assert c.cmd("LIST 1") == b"+OK 1 %d\r\n" % len(g.to_wire(m1))
    assert c.cmd("LIST 3") == "-ERR そのメッセージはありません\r\n".encode()
    assert c.cmd("LIST x") == "-ERR メッセージ番号が正しくありません\r\n".encode()
    status, body = c.cmd_multi("LIST")
    assert status == ("+OK 2 件のメッセージ (%d オクテット)\r\n" % total).encode()
    status, _ = c.cmd_multi("UIDL")
    assert status == "+OK 固有 ID の一覧です\r\n".encode()
    status, body = c.cmd_multi("RETR 1")
    assert status == ("+OK %d オクテット\r\n" % len(g.to_wire(m1))).encode()
    assert body == g.retr_wire(m1)
    status, body = c.cmd_multi("TOP 2 0")
    assert status == "+OK メッセージの先頭です\r\n".encode()
    assert c.cmd("TOP 2 x") == "-ERR 行数が正しくありません\r\n".encode()
    assert c.cmd("DELE 1") == "+OK メッセージ 1 を削除しました\r\n".encode()
    assert c.cmd("DELE 1") == "-ERR メッセージ 1 は削除済みです\r\n".encode()
    assert c.cmd("RSET") == ("+OK 2 件のメッセージ (%d オクテット)\r\n" % total).encode()
    assert c.cmd("NOOP") == b"+OK\r\n"
    assert c.cmd("STLS") == "-ERR このコマンドはこの状態では使えません\r\n".encode()
    assert c.cmd("UTF8") == "-ERR このコマンドはこの状態では使えません\r\n".encode()
    assert c.cmd("RETR") == "-ERR 使い方: RETR message\r\n".encode()
    status, _ = c.cmd_multi("CAPA")
    assert status == "+OK 機能の一覧です\r\n".encode()
    # LANG works in TRANSACTION too (RFC 6856 §3.1).
    assert c.cmd("LANG en") == LANG_OK_EN
    assert c.cmd("LIST 3") == b"-ERR No such message\r\n"
    assert c.cmd("LANG ja") == LANG_OK_JA
    assert c.cmd("DELE 2") == "+OK メッセージ 2 を削除しました\r\n".encode()
    assert c.cmd("QUIT") == "+OK さようなら。1 件のメッセージを削除しました\r\n".encode()


def test_s133_in_use_in_japanese(server):
    """S-133: [IN-USE] keeps its code, the text is Japanese."""
    first = server.login("alice")
    c = _ja_session(server)
    assert c.cmd("USER alice") == b"+OK\r\n"
    r = c.cmd("PASS " + server.password("alice"))
    assert r == "-ERR [IN-USE] メールボックスはほかの POP3 セッションが使用中です\r\n".encode()
    first.quit()


def test_s133_login_delay_in_japanese(gannet):
    """S-133: [LOGIN-DELAY] keeps its code and numbers, the text is Japanese."""
    srv = gannet(login_delay="300")
    srv.login("alice").quit()
    c = _ja_session(srv)
    assert c.cmd("USER alice") == b"+OK\r\n"
    r = c.cmd("PASS " + srv.password("alice"))
    m = g.re.match("^-ERR \\[LOGIN-DELAY\\] ログインの間隔は 300 秒です。(\\d+) 秒後にやり直して"
                   "ください\r\n$".encode(), r)
    assert m, r


def test_s136_lang_star_does_not_depend_on_user(server):
    """S-136: LANG * before and after USER selects the same default; USER does not change the
    reply language."""
    c = server.connect()
    assert c.cmd("LANG *") == LANG_OK_EN
    assert c.cmd("USER alice") == b"+OK\r\n"
    assert c.cmd("LANG *") == LANG_OK_EN
    assert c.cmd("USER nobody-here") == b"+OK\r\n"
    assert c.cmd("LANG *") == LANG_OK_EN


@pytest.mark.parametrize("isolation", ["shared", "per-connection"])
def test_s127_s130_8bit_header_refused_outside_utf8_mode(server):
    """S-127/S-130: RETR and TOP of a message with 8-bit header bytes outside UTF-8 mode ->
    -ERR [UTF8] before any +OK; a message with 8-bit bytes only in its body is sent as is; the
    session goes on."""
    box = server.maildir("alice")
    box.deliver(HDR8)
    box.deliver(BODY8)
    c = server.login("alice")
    need = b"-ERR [UTF8] Message 1 has a UTF-8 header; log in after the UTF8 command to " \
           b"retrieve it\r\n"
    assert c.cmd("RETR 1") == need
    assert c.cmd("TOP 1 0") == need
    assert c.cmd("LIST 1") == b"+OK 1 %d\r\n" % len(g.to_wire(HDR8))
    assert c.retr(2) == g.retr_wire(BODY8)
    status, body = c.cmd_multi("TOP 2 1")
    assert status == b"+OK Top of message follows\r\n"
    assert body == g.top_wire(BODY8, 1)
    assert c.cmd("NOOP") == b"+OK\r\n"
    c.quit()
    assert "event=refused_utf8" in server.log_text()


def test_s130_refuse_8bit_headers_no_sends_as_stored(gannet):
    """S-130 is the default; refuse_8bit_headers = no is the documented way out for sites whose
    clients never send UTF8: the message then goes out as stored, its size as LIST says."""
    srv = gannet(refuse_8bit_headers="no")
    srv.maildir("alice").deliver(HDR8)
    c = srv.login("alice")
    assert c.cmd("LIST 1") == b"+OK 1 %d\r\n" % len(g.to_wire(HDR8))
    assert c.retr(1) == g.retr_wire(HDR8)
    c.quit()
    assert "event=refused_utf8" not in srv.log_text()


@pytest.mark.parametrize("isolation", ["shared", "per-connection"])
def test_s130_s131_8bit_header_sent_as_is_in_utf8_mode(server):
    """S-130: in UTF-8 mode the message goes out unchanged; S-131: its LIST size equals the
    octets RETR sends (before stuffing)."""
    box = server.maildir("alice")
    box.deliver(HDR8)
    c = server.connect()
    assert c.cmd("UTF8") == UTF8_OK
    c.login("alice", server.password("alice"))
    size = len(g.to_wire(HDR8))
    assert c.cmd("LIST 1") == b"+OK 1 %d\r\n" % size
    status, body = c.cmd_multi("RETR 1")
    assert status == b"+OK %d octets\r\n" % size
    assert body == g.retr_wire(HDR8)
    assert len(g.unstuff(body[:-3])) == size
    status, body = c.cmd_multi("TOP 1 0")
    assert body == g.top_wire(HDR8, 0)
    c.quit()


def test_s130_header_scan_crlf_and_late_8bit(server):
    """S-130: the header ends at the first empty line in CRLF files too; an 8-bit byte after it
    is body. A long ASCII header (above one read chunk) with an 8-bit byte late in it is still
    refused."""
    box = server.maildir("alice")
    crlf = b"Subject: x\r\nX-A: b\r\n\r\nbody \xe6\x97\xa5\r\n"
    long_hdr = b"".join(b"X-Pad-%06d: %s\n" % (i, b"p" * 60) for i in range(2000)) + \
        b"Subject: \xe6\x97\xa5\n\nbody\n"
    box.deliver(crlf)
    box.deliver(long_hdr)
    c = server.login("alice")
    assert c.retr(1) == g.retr_wire(crlf)
    assert c.cmd("RETR 2").startswith(b"-ERR [UTF8] Message 2 ")
    c.quit()
