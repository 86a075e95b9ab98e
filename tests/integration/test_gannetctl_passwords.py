"""gannetctl user add / user passwd: SCRAM verifiers beside the hash, and the passwdqc check.

The verifiers in the user file are recomputed here with hashlib and hmac from the stored salt and
iteration count (RFC 5802 §3), independently of GNU SASL and OpenSSL in gannetctl.
"""

import base64
import hashlib
import hmac
import os
import re
import subprocess

import gannettest as g

STRONG = "Kestrel-Quartz-71"
STRONG2 = "Ledger-Pylon-second-2"
WEAK_TAIL = b"; use --force to store it anyway\n"


def ctl(userdb, *args, stdin=None):
    return subprocess.run([g.GANNETCTL, "-f", userdb] + list(args), input=stdin,
                          capture_output=True, timeout=g.t(60), env=g.run_env())


def scram(h, prepped, salt, iters):
    """StoredKey and ServerKey in lowercase hex (RFC 5802 §3)."""
    salted = hashlib.pbkdf2_hmac(h, prepped.encode(), salt, iters)
    stored = hashlib.new(h, hmac.new(salted, b"Client Key", h).digest()).hexdigest()
    server = hmac.new(salted, b"Server Key", h).hexdigest()
    return stored, server


def fields(userdb, user):
    """(fields, extra words) of the first line for USER, CR stripped."""
    with open(userdb, "rb") as fp:
        lines = fp.read().decode().split("\n")
    for line in lines:
        f = line.rstrip("\r").split(":", 7)
        if f[0] == user:
            return f, (f[7].split() if len(f) > 7 else [])
    raise AssertionError("no line for %s" % user)


def verifiers(words):
    """{"scram-sha-1": text, ...}; each key must appear at most once."""
    out = {}
    for w in words:
        k, _, v = w.partition("=")
        if k in ("scram-sha-1", "scram-sha-256"):
            assert k not in out, words
            out[k] = v
    return out


def check_verifiers(userdb, user, prepped):
    """Both verifiers present, well formed, and equal to what PREPPED gives with their salt."""
    _, words = fields(userdb, user)
    v = verifiers(words)
    assert sorted(v) == ["scram-sha-1", "scram-sha-256"], words
    for key, h, hexlen in (("scram-sha-1", "sha1", 40), ("scram-sha-256", "sha256", 64)):
        m = re.fullmatch(r"(\d+),([A-Za-z0-9+/]+={0,2}),([0-9a-f]+),([0-9a-f]+)", v[key])
        assert m, v[key]
        iters, salt_b64, stored, server = int(m.group(1)), m.group(2), m.group(3), m.group(4)
        assert iters == 4096
        salt = base64.b64decode(salt_b64, validate=True)
        assert len(salt) == 16
        assert base64.b64encode(salt).decode() == salt_b64
        assert len(stored) == hexlen and len(server) == hexlen
        assert (stored, server) == scram(h, prepped, salt, iters), key
    return v


def test_add_stores_both_verifiers(tmp_path, ctl_env):
    userdb = str(tmp_path / "users")
    r = ctl(userdb, "user", "add", "carol", "--password-stdin", stdin=STRONG.encode() + b"\n")
    assert r.returncode == 0, r
    assert r.stdout == b"" and r.stderr == b""
    f, _ = fields(userdb, "carol")
    assert f[1].startswith("{ARGON2ID}$argon2id$")
    v = check_verifiers(userdb, "carol", STRONG)
    # A fresh salt for each verifier.
    assert v["scram-sha-1"].split(",")[1] != v["scram-sha-256"].split(",")[1]
    with open(userdb, "rb") as fp:
        assert STRONG.encode() not in fp.read()


def test_add_with_scheme_and_mail(tmp_path, ctl_env):
    userdb = str(tmp_path / "users")
    r = ctl(userdb, "user", "add", "dave", "-s", "SHA512-CRYPT", "--mail", "/var/mail/%u",
            "--password-stdin", stdin=STRONG.encode() + b"\n")
    assert r.returncode == 0, r
    f, words = fields(userdb, "dave")
    assert f[1].startswith("{SHA512-CRYPT}$6$")
    assert words[0] == "userdb_mail=maildir:/var/mail/%u"
    assert [w.split("=")[0] for w in words[1:]] == ["scram-sha-1", "scram-sha-256"]
    check_verifiers(userdb, "dave", STRONG)


def test_saslprep_applied(tmp_path, ctl_env):
    """RFC 4013: U+00A0 becomes a space and U+00AD disappears, as a client would prepare it."""
    userdb = str(tmp_path / "users")
    pw = "Kestrel\u00a0Quar\u00adtz-71"
    r = ctl(userdb, "user", "add", "erin", "--password-stdin", stdin=pw.encode() + b"\n")
    assert r.returncode == 0, r
    check_verifiers(userdb, "erin", "Kestrel Quartz-71")


def test_password_saslprep_refuses(tmp_path, ctl_env):
    """An unassigned code point (U+1F600 in Unicode 3.2) cannot make a stored verifier."""
    userdb = str(tmp_path / "users")
    before = b"old:{PLAIN}x\n"
    with open(userdb, "wb") as fp:
        fp.write(before)
    r = ctl(userdb, "user", "add", "fay", "--password-stdin", "--force",
            stdin=(STRONG + "\U0001f600").encode() + b"\n")
    assert r.returncode == 1, r
    assert r.stderr == (b"gannetctl: password is not UTF-8 that SASLprep accepts (RFC 4013: "
                        b"no control characters, no unassigned code points)\n")
    with open(userdb, "rb") as fp:
        assert fp.read() == before


def test_weak_password_refused_file_unchanged(tmp_path, ctl_env):
    userdb = str(tmp_path / "users")
    r = ctl(userdb, "user", "add", "carol", "--password-stdin", stdin=STRONG.encode() + b"\n")
    assert r.returncode == 0, r
    with open(userdb, "rb") as fp:
        before = fp.read()
    st = os.stat(userdb)
    cases = [
        (("user", "add", "gustav"), b"secret", b"too short"),
        (("user", "add", "gustav"), b"aaaaaaaaaaaaaaaaaaaa",
         b"not enough different characters or classes for this length"),
        (("user", "add", "gustav"), b"Pw-gustav-first-1", b"based on personal login information"),
        (("user", "passwd", "carol"), b"secret", b"too short"),
        (("user", "passwd", "carol"), b"Pw-carol-first-1", b"based on personal login information"),
        (("user", "passwd", "carol"), b"x" * 73, b"too long"),
    ]
    for args, pw, reason in cases:
        r = ctl(userdb, *args, "--password-stdin", stdin=pw + b"\n")
        assert r.returncode == 1, (args, pw, r)
        assert r.stdout == b""
        assert r.stderr == b"gannetctl: weak password: " + reason + WEAK_TAIL, (args, pw)
        with open(userdb, "rb") as fp:
            assert fp.read() == before, (args, pw)
        assert os.stat(userdb).st_ino == st.st_ino   # not even rewritten


def test_force_stores_weak_password(tmp_path, ctl_env):
    userdb = str(tmp_path / "users")
    r = ctl(userdb, "user", "add", "hal", "--password-stdin", "--force", stdin=b"secret\n")
    assert r.returncode == 0, r
    assert r.stderr == b""
    check_verifiers(userdb, "hal", "secret")
    r = ctl(userdb, "user", "passwd", "hal", "--force", "--password-stdin", stdin=b"hal\n")
    assert r.returncode == 0, r
    check_verifiers(userdb, "hal", "hal")


def test_passwd_replaces_verifiers_keeps_the_rest(tmp_path, ctl_env):
    """A Dovecot line without verifiers gains them; other extra words, fields, the CR and the
    other lines stay; a second passwd replaces the verifiers instead of adding more."""
    userdb = str(tmp_path / "users")
    head = b"# users\nann:{PLAIN}a:1:1::/h/a\n"
    tail = b"zed:{PLAIN}z\n"
    line = (b"ivy:{PLAIN}old-pw:1000:1001:Ivy Example:/home/ivy:/bin/false:"
            b"userdb_mail=maildir:/m/ivy  userdb_quota_rule=*:storage=1G nopass\r\n")
    with open(userdb, "wb") as fp:
        fp.write(head + line + tail)
    r = ctl(userdb, "user", "passwd", "ivy", "--password-stdin", stdin=STRONG.encode() + b"\n")
    assert r.returncode == 0, r
    with open(userdb, "rb") as fp:
        data = fp.read()
    assert data.startswith(head) and data.endswith(tail)
    new = data[len(head):-len(tail)]
    assert new.endswith(b"\r\n") and new.count(b"\n") == 1
    f, words = fields(userdb, "ivy")
    assert f[1].startswith("{ARGON2ID}$argon2id$")
    assert f[2:7] == ["1000", "1001", "Ivy Example", "/home/ivy", "/bin/false"]
    assert words[:3] == ["userdb_mail=maildir:/m/ivy", "userdb_quota_rule=*:storage=1G", "nopass"]
    first = check_verifiers(userdb, "ivy", STRONG)

    r = ctl(userdb, "user", "passwd", "ivy", "--password-stdin", stdin=STRONG2.encode() + b"\n")
    assert r.returncode == 0, r
    f, words = fields(userdb, "ivy")
    assert len(words) == 5, words
    second = check_verifiers(userdb, "ivy", STRONG2)
    assert first["scram-sha-256"] != second["scram-sha-256"]
    # gannetctl reads back what it wrote.
    r = ctl(userdb, "user", "list")
    assert r.returncode == 0, r
    assert r.stdout == b"ann\t/h/a\t-\nivy\t/home/ivy\t/m/ivy\nzed\t-\t-\n"


def test_passwd_short_line(tmp_path, ctl_env):
    """A two-field line ("user:hash") gets the empty fields it needs for the extra field."""
    userdb = str(tmp_path / "users")
    with open(userdb, "wb") as fp:
        fp.write(b"kim:{PLAIN}x")
    r = ctl(userdb, "user", "passwd", "kim", "--password-stdin", "-s", "PLAIN",
            stdin=STRONG.encode() + b"\n")
    assert r.returncode == 0, r
    with open(userdb, "rb") as fp:
        data = fp.read()
    assert data.startswith(b"kim:{PLAIN}" + STRONG.encode() + b"::::::scram-sha-1=4096,")
    assert b"\n" not in data
    check_verifiers(userdb, "kim", STRONG)


def test_broken_verifier_is_reported(tmp_path, ctl_env):
    userdb = str(tmp_path / "users")
    with open(userdb, "wb") as fp:
        fp.write(b"ok:{PLAIN}x\nbad:{PLAIN}y::::::scram-sha-256=4096,AAAA,00,00\n")
    r = ctl(userdb, "user", "list")
    assert r.returncode == 1
    assert r.stdout == b"ok\t-\t-\n"
    assert r.stderr == (b"gannetctl: %s:2: scram-sha-256=: salt is not base64 of 8 to 45 bytes\n"
                        % os.path.realpath(userdb).encode())
