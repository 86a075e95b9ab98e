"""gannetctl app-password, totp and apop: the real binary against a temporary auth_dir.

TOTP codes come from the real `oathtool --totp -b SECRET` (Debian's oathtool)."""

import hashlib
import os
import pwd
import re
import stat
import subprocess
import time

import pytest

import gannettest as g

APPPW_RE = r"[23456789ABCDEFGHJKLMNPQRSTUVWXYZ]{4}(-[23456789ABCDEFGHJKLMNPQRSTUVWXYZ]{4}){4}"
RECOVERY_RE = r"[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}"
HASH_RE = r"sha256\$([0-9a-f]{32})\$([0-9a-f]{64})"
QR_CHARS = set("\u2588\u2580\u2584 ")


class Env:
    def __init__(self, base, auth_user=None):
        self.base = str(base)
        self.userdb = os.path.join(self.base, "users")
        self.auth = os.path.join(self.base, "auth")
        self.conf = os.path.join(self.base, "gannetd.conf")
        with open(self.userdb, "w") as f:
            f.write("alice:{PLAIN}pw-a::::/home/alice::\nbob:{PLAIN}pw-b\n")
        lines = ["listen = 127.0.0.1:1", "userdb = " + self.userdb, "auth_dir = " + self.auth,
                 "hostname = mail.example.test"]
        if auth_user:
            lines.append("auth_user = " + auth_user)
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def ctl(self, *args, stdin=None, conf=True):
        pre = ["-c", self.conf] if conf else []
        r = subprocess.run([g.GANNETCTL] + pre + list(args), input=stdin, capture_output=True,
                           timeout=g.t(30), env=g.run_env())
        r.out = r.stdout.decode()
        r.err = r.stderr.decode()
        return r

    def file(self, kind):
        with open(os.path.join(self.auth, kind)) as f:
            return f.read()

    def write(self, kind, text):
        os.makedirs(self.auth, mode=0o700, exist_ok=True)
        with open(os.path.join(self.auth, kind), "w") as f:
            f.write(text)


@pytest.fixture
def env(tmp_path, ctl_env):
    return Env(tmp_path)


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def salted(salt_hex, text):
    return hashlib.sha256(bytes.fromhex(salt_hex) + text.encode()).hexdigest()


def oathtool(secret, when=None):
    cmd = ["oathtool", "--totp", "-b", secret]
    if when is not None:
        cmd += ["--now", time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(when))]
    r = subprocess.run(cmd, capture_output=True, timeout=30, check=True)
    code = r.stdout.decode().strip()
    assert re.fullmatch(r"\d{6}", code), code
    return code


def test_app_password_lifecycle(env):
    t0 = int(time.time())
    r = env.ctl("app-password", "add", "alice", "--name", "phone")
    t1 = int(time.time())
    assert r.returncode == 0, r
    assert r.err == ""
    lines = r.out.splitlines()
    assert len(lines) == 2, r.out
    assert re.fullmatch(APPPW_RE, lines[0]), lines[0]
    assert lines[1] == "This app password for alice (phone) is shown only once."
    pw = lines[0]

    text = env.file("app-passwords")
    m = re.fullmatch(r"alice phone (\d+) 0 - " + HASH_RE + "\n", text)
    assert m, text
    assert t0 <= int(m.group(1)) <= t1
    # The verifier is SHA-256(salt || the 20 symbols without dashes); the password is not stored.
    assert m.group(3) == salted(m.group(2), pw.replace("-", ""))
    assert pw.replace("-", "") not in text
    assert stat.S_IMODE(os.stat(os.path.join(env.auth, "app-passwords")).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(env.auth).st_mode) == 0o700
    created = iso(int(m.group(1)))

    r = env.ctl("app-password", "list")
    assert r.returncode == 0, r
    assert r.out.splitlines() == [
        "USER   NAME   CREATED               LAST USED             LAST IP",
        "alice  phone  %s  -                     -" % created,
    ]
    r = env.ctl("app-password", "list", "bob")
    assert r.returncode == 0 and r.out.splitlines() == [
        "USER  NAME  CREATED               LAST USED             LAST IP"], r

    r = env.ctl("app-password", "add", "alice", "--name", "phone")
    assert r.returncode == 1
    assert r.err == "gannetctl: alice already has an app password named phone\n"
    assert env.file("app-passwords") == text

    r = env.ctl("app-password", "revoke", "alice", "phone")
    assert (r.returncode, r.out, r.err) == (0, "", "")
    assert env.file("app-passwords") == ""
    r = env.ctl("app-password", "revoke", "alice", "phone")
    assert r.returncode == 1
    assert r.err == "gannetctl: user 'alice' has no app password named 'phone'\n"


def test_app_password_refusals(env):
    r = env.ctl("app-password", "add", "carol", "--name", "phone")
    assert r.returncode == 1
    assert r.err == "gannetctl: user 'carol' does not exist in %s\n" % env.userdb
    r = env.ctl("app-password", "add", "alice")
    assert r.returncode == 2
    assert r.err.startswith("gannetctl: --name NAME is required\nusage: gannetctl ")
    r = env.ctl("app-password", "add", "alice", "--name", "my phone")
    assert r.returncode == 1
    assert r.err == ("gannetctl: 'my phone': invalid app password name "
                     "(1 to 32 of A-Z a-z 0-9 . _ -)\n")
    r = env.ctl("app-password", "list", "alice", "bob")
    assert r.returncode == 2 and "unexpected argument 'bob'" in r.err, r
    r = env.ctl("app-password", "list", "../etc")
    assert r.returncode == 1 and r.err.startswith("gannetctl: invalid user name '../etc'"), r
    assert not os.path.exists(env.auth)

    for i in range(32):
        assert env.ctl("app-password", "add", "bob", "--name", "d%d" % i).returncode == 0
    r = env.ctl("app-password", "add", "bob", "--name", "d32")
    assert r.returncode == 1
    assert r.err == "gannetctl: bob already has 32 app passwords, the most allowed\n"


def test_app_password_list_shows_last_use(env):
    h = "sha256$" + "ab" * 16 + "$" + "cd" * 32
    env.write("app-passwords", "# managed by gannetctl\n"
              "alice thunderbird 1700000000 1700003600 2001:db8::25 %s\n"
              "bob x 1700000001 0 - %s\n" % (h, h))
    r = env.ctl("app-password", "list")
    assert r.returncode == 0, r
    assert r.out.splitlines() == [
        "USER   NAME         CREATED               LAST USED             LAST IP",
        "alice  thunderbird  2023-11-14T22:13:20Z  2023-11-14T23:13:20Z  2001:db8::25",
        "bob    x            2023-11-14T22:13:21Z  -                     -",
    ]
    # A revoke rewrites the file: the comment and the other records stay as they were.
    assert env.ctl("app-password", "revoke", "bob", "x").returncode == 0
    assert env.file("app-passwords") == (
        "# managed by gannetctl\nalice thunderbird 1700000000 1700003600 2001:db8::25 %s\n" % h)


def test_totp_enable_wrong_then_right(env):
    r = env.ctl("totp", "status", "alice")
    assert (r.returncode, r.out) == (0, "alice: TOTP off\n"), r

    # Not a code at all: the record is created pending.
    r = env.ctl("totp", "enable", "alice", "--code", "x")
    assert r.returncode == 1, r
    text = env.file("totp")
    m = re.fullmatch(r"alice pending ([A-Z2-7]{32}) 0\n", text)
    assert m, text
    secret = m.group(1)
    lines = r.out.splitlines()
    assert lines[0] == ("Add this account to the authenticator app: scan the QR code or open "
                        "the URI.")
    uri = ("otpauth://totp/mail.example.test:alice?secret=%s&issuer=mail.example.test"
           "&algorithm=SHA1&digits=6&period=30" % secret)
    assert lines[1] == uri
    assert lines[-1] == "Secret for typing in by hand: " + secret
    qr = lines[2:-1]
    assert len(qr) >= 15 and all(set(ln) <= QR_CHARS and ln for ln in qr), qr
    assert len({len(ln) for ln in qr}) == 1
    # A code from an hour ago is wrong now: the record stays pending.
    stale = oathtool(secret, time.time() - 3600)
    r = env.ctl("totp", "enable", "alice", "--code", stale)
    assert r.returncode == 1, r
    assert r.err == ("gannetctl: wrong code: TOTP for 'alice' stays pending "
                     "(run totp enable again)\n")
    assert env.file("totp") == text
    r = env.ctl("totp", "status", "alice")
    assert r.out == "alice: TOTP pending (not yet confirmed with a code)\n"

    # The right code, read from stdin; the pending secret is kept, so a scanned app still works.
    t0 = int(time.time())
    r = env.ctl("totp", "enable", "alice", stdin=(oathtool(secret) + "\n").encode())
    t1 = int(time.time())
    assert r.returncode == 0, r
    assert r.err == ""
    lines = r.out.splitlines()
    assert lines[1] == uri
    i = lines.index("Secret for typing in by hand: " + secret)
    assert lines[i + 1:i + 3] == [
        "TOTP is active for alice.",
        "Recovery codes (each works once; they are shown only now):"]
    codes = lines[i + 3:]
    assert len(codes) == 10 and len(set(codes)) == 10
    assert all(re.fullmatch(RECOVERY_RE, c) for c in codes), codes

    text = env.file("totp")
    m = re.fullmatch(r"alice active %s (\d+)((?: %s){10})\n" % (secret, HASH_RE), text)
    assert m, text
    step = int(m.group(1))
    assert t0 // 30 - 1 <= step <= t1 // 30 + 1
    hashes = re.findall(HASH_RE, m.group(2))
    for code, (salt, h) in zip(codes, hashes):
        assert h == salted(salt, code.replace("-", "")), code
    assert stat.S_IMODE(os.stat(os.path.join(env.auth, "totp")).st_mode) == 0o600

    r = env.ctl("totp", "status", "alice")
    assert r.out == ("alice: TOTP active, 10 recovery codes left, last code accepted %s\n"
                     % iso(step * 30)), r
    r = env.ctl("totp", "enable", "alice", "--code", "000000")
    assert r.returncode == 1
    assert r.err == "gannetctl: TOTP is already active for 'alice' (totp disable first)\n"
    assert r.out == ""

    # New recovery codes replace the old ones; secret and step stay.
    r = env.ctl("totp", "recovery", "alice")
    assert r.returncode == 0, r
    lines = r.out.splitlines()
    assert lines[0] == "Recovery codes (each works once; they are shown only now):"
    new = lines[1:]
    assert len(new) == 10 and not set(new) & set(codes)
    text2 = env.file("totp")
    assert text2.startswith("alice active %s %d sha256$" % (secret, step))
    for code, (salt, h) in zip(new, re.findall(HASH_RE, text2)):
        assert h == salted(salt, code.replace("-", ""))

    r = env.ctl("totp", "disable", "alice")
    assert (r.returncode, r.out, r.err) == (0, "", "")
    assert env.file("totp") == ""
    assert env.ctl("totp", "status", "alice").out == "alice: TOTP off\n"
    r = env.ctl("totp", "disable", "alice")
    assert r.returncode == 1 and r.err == "gannetctl: user 'alice' has no TOTP record\n"
    r = env.ctl("totp", "recovery", "alice")
    assert r.returncode == 1 and r.err == "gannetctl: TOTP is not active for 'alice'\n"


def test_totp_enable_refusals(env):
    r = env.ctl("totp", "enable", "carol", "--code", "123456")
    assert r.returncode == 1
    assert r.err == "gannetctl: user 'carol' does not exist in %s\n" % env.userdb
    assert not os.path.exists(os.path.join(env.auth, "totp"))
    # No code on stdin at all.
    r = env.ctl("totp", "enable", "bob", stdin=b"")
    assert r.returncode == 1 and r.err == "gannetctl: no code given\n", r
    r = env.ctl("totp", "enable", "bob", stdin=b"1" * 300 + b"\n")
    assert r.returncode == 1 and r.err == "gannetctl: code too long\n", r
    assert re.fullmatch(r"bob pending [A-Z2-7]{32} 0\n", env.file("totp"))


def test_totp_issuer_without_config(env):
    """With -f and --auth-dir no config file is read: the issuer is "Gannet"."""
    auth2 = os.path.join(env.base, "other-auth")
    r = env.ctl("-f", env.userdb, "totp", "enable", "bob", "--code", "x", "--auth-dir", auth2,
                conf=False)
    assert r.returncode == 1
    m = re.search(r"^otpauth://totp/Gannet:bob\?secret=([A-Z2-7]{32})&issuer=Gannet&", r.out,
                  re.M)
    assert m, r.out
    with open(os.path.join(auth2, "totp")) as f:
        assert f.read() == "bob pending %s 0\n" % m.group(1)
    assert not os.path.exists(env.auth)


def test_broken_store_is_reported(env):
    env.write("totp", "alice enabled AAAA 0\n")
    r = env.ctl("totp", "status", "alice")
    assert r.returncode == 1
    assert r.err == "gannetctl: %s/totp:1: state is neither active nor pending\n" % env.auth
    env.write("app-passwords", "# ok\nalice phone 1 0 -\n")
    r = env.ctl("app-password", "list")
    assert r.returncode == 1
    assert r.err == ("gannetctl: %s/app-passwords:2: wrong number of fields or stray spaces\n"
                     % env.auth)
    assert r.out == ""


def test_apop(env):
    r = env.ctl("apop", "enable", "bob", "--password-stdin", stdin=b"apop-secret\n")
    assert (r.returncode, r.out, r.err) == (0, "", ""), r
    assert env.file("apop") == "bob YXBvcC1zZWNyZXQ=\n"
    assert stat.S_IMODE(os.stat(os.path.join(env.auth, "apop")).st_mode) == 0o600
    r = env.ctl("apop", "enable", "alice", "--password-stdin", stdin=b"other one\r\n")
    assert r.returncode == 0, r
    r = env.ctl("apop", "enable", "bob", "--password-stdin", stdin=b"changed\n")
    assert r.returncode == 0, r
    assert env.file("apop") == "bob Y2hhbmdlZA==\nalice b3RoZXIgb25l\n"
    r = env.ctl("apop", "enable", "carol", "--password-stdin", stdin=b"x\n")
    assert r.returncode == 1
    r = env.ctl("apop", "enable", "alice", "--password-stdin", stdin=b"\n")
    assert r.returncode == 1 and r.err == "gannetctl: empty password refused\n"
    r = env.ctl("apop", "disable", "bob")
    assert (r.returncode, r.out, r.err) == (0, "", "")
    assert env.file("apop") == "alice b3RoZXIgb25l\n"
    r = env.ctl("apop", "disable", "bob")
    assert r.returncode == 1 and r.err == "gannetctl: user 'bob' has no APOP secret\n"


def test_auth_dir_option_overrides_config(env):
    other = os.path.join(env.base, "elsewhere")
    r = env.ctl("apop", "enable", "bob", "--password-stdin", "--auth-dir", other,
                stdin=b"s3\n")
    assert r.returncode == 0, r
    with open(os.path.join(other, "apop")) as f:
        assert f.read() == "bob czM=\n"
    assert not os.path.exists(env.auth)


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_new_files_belong_to_auth_user(tmp_path, ctl_env):
    env = Env(tmp_path, auth_user="nobody")
    nobody = pwd.getpwnam("nobody")
    r = env.ctl("apop", "enable", "bob", "--password-stdin", stdin=b"s\n")
    assert r.returncode == 0, r
    r = env.ctl("app-password", "add", "bob", "--name", "phone")
    assert r.returncode == 0, r
    for name in ("", "apop", "app-passwords", ".lock"):
        st = os.stat(os.path.join(env.auth, name))
        assert (st.st_uid, st.st_gid) == (nobody.pw_uid, nobody.pw_gid), name
    # A directory someone else owns draws a warning: the server could not update it.
    os.makedirs(tmp_path / "two")
    env2 = Env(tmp_path / "two", auth_user="nobody")
    os.makedirs(env2.auth, mode=0o700)
    r = env2.ctl("apop", "enable", "bob", "--password-stdin", stdin=b"s\n")
    assert r.returncode == 0, r
    assert r.err == ("gannetctl: warning: %s is owned by uid 0, not by auth_user nobody: the "
                     "server cannot record logins there\n" % env2.auth)


def test_help_lists_the_commands(ctl_env):
    r = subprocess.run([g.GANNETCTL, "help"], capture_output=True, timeout=g.t(30),
                       env=g.run_env())
    out = r.stdout.decode()
    for grammar in ("app-password add USER [--name NAME] [--auth-dir DIR]",
                    "app-password list [USER] [--auth-dir DIR]",
                    "app-password revoke USER NAME [--auth-dir DIR]",
                    "totp enable USER [--code CODE] [--auth-dir DIR]",
                    "totp disable USER [--auth-dir DIR]", "totp recovery USER [--auth-dir DIR]",
                    "totp status USER [--auth-dir DIR]",
                    "apop enable USER [--password-stdin] [--auth-dir DIR]",
                    "apop disable USER [--auth-dir DIR]"):
        assert "\n  %s\n" % grammar in out, grammar

