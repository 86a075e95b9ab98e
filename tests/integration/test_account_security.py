"""App passwords, TOTP two-factor and APOP, end to end: gannetctl sets them up in the server's
auth_dir, real clients log in over real sockets (mpop for APOP, curl for an app password,
oathtool for the codes). S-016..S-018, S-029..S-031, S-122."""

import base64
import hashlib
import re
import subprocess
import time

import pytest

import gannettest as g
from test_sasl import scram_login

PW = "Correct-Horse-7"
FAILED = b"-ERR [AUTH] Authentication failed\r\n"


def ctl(srv, *args, stdin=None):
    r = subprocess.run([g.GANNETCTL, "-c", srv.conf_path] + list(args), input=stdin,
                       capture_output=True, timeout=g.t(30), env=g.run_env())
    assert r.returncode == 0, r
    return r.stdout.decode()


def oathtool(secret, when=None):
    cmd = ["oathtool", "--totp", "-b", secret]
    if when is not None:
        cmd += ["--now", time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(when))]
    code = subprocess.run(cmd, capture_output=True, timeout=30, check=True).stdout.decode()
    assert re.fullmatch(r"\d{6}\n", code), code
    return code.strip()


def plain(c, user, password):
    return c.cmd("AUTH PLAIN " + base64.b64encode(b"\0" + user.encode() + b"\0" +
                                                   password.encode()).decode())


def pass_login(srv, user, password):
    c = srv.connect()
    assert c.cmd("USER " + user) == b"+OK\r\n"
    r = c.cmd("PASS " + password)
    if r.startswith(b"+OK"):
        assert c.quit().startswith(b"+OK")
    else:
        c.close()
    return r


@pytest.fixture
def srv(gannet):
    s = gannet(users=(), start=False)
    s.add_user("alice", password=PW, scram=True)
    s.add_user("bob", password="Bob-pass-99")
    s.start()
    return s


def test_app_password_logs_in_only_its_user_until_revoked(srv):
    out = ctl(srv, "app-password", "add", "alice", "--name", "phone")
    apppw = out.splitlines()[0]
    assert pass_login(srv, "alice", apppw).startswith(b"+OK")
    # typed without dashes and in lower case
    assert pass_login(srv, "alice", apppw.replace("-", "").lower()).startswith(b"+OK")
    c = srv.connect()
    assert plain(c, "alice", apppw).startswith(b"+OK")
    assert c.quit().startswith(b"+OK")
    assert pass_login(srv, "bob", apppw) == FAILED  # another user's app password
    log = srv.log_text()
    assert "event=auth_ok user=alice method=PASS+app-password=phone" in log
    assert "event=auth_ok user=alice method=PLAIN+app-password=phone" in log
    listing = ctl(srv, "app-password", "list", "alice")
    assert re.search(r"^alice +phone +\S+ +\S+ +127\.0\.0\.1$", listing, re.M), listing
    ctl(srv, "app-password", "revoke", "alice", "phone")
    assert pass_login(srv, "alice", apppw) == FAILED
    assert pass_login(srv, "alice", PW).startswith(b"+OK")  # the account password still works


def test_curl_with_app_password(srv):
    apppw = ctl(srv, "app-password", "add", "alice", "--name", "laptop").splitlines()[0]
    srv.maildir("alice").deliver(g.header("app") + b"body\n")
    p = subprocess.run(["curl", "-sS", "--max-time", "30", "--cacert", srv.cert[0], "--ssl-reqd",
                        "-u", "alice:" + apppw, "pop3://localhost:%d/1" % srv.port],
                       capture_output=True, timeout=g.t(60))
    assert p.returncode == 0, p
    assert p.stdout == g.header("app").replace(b"\n", b"\r\n") + b"body\r\n"


def enable_totp(srv, user):
    out = subprocess.run([g.GANNETCTL, "-c", srv.conf_path, "totp", "enable", user, "--code",
                          "x"], capture_output=True, timeout=g.t(30), env=g.run_env())
    secret = re.search(rb"Secret for typing in by hand: ([A-Z2-7]+)", out.stdout).group(1)
    secret = secret.decode()
    out = ctl(srv, "totp", "enable", user, "--code", oathtool(secret))
    codes = re.findall(r"[0-9A-HJKMNP-TV-Z]{4}(?:-[0-9A-HJKMNP-TV-Z]{4}){3}", out)
    assert len(codes) == 10, out
    return secret, codes


def next_step_code(secret):
    """The code of the next time step: inside the accepted window (one step of drift), and
    newer than the step the activation spent, so no waiting for the clock."""
    return oathtool(secret, time.time() + 30)


def test_totp_password_alone_refused_code_once(srv):
    secret, codes = enable_totp(srv, "alice")
    # the activation used the current step: its code is spent
    assert pass_login(srv, "alice", PW) == FAILED
    assert "reason=\"totp_required\"" in srv.log_text()
    code = next_step_code(secret)
    assert pass_login(srv, "alice", PW + code).startswith(b"+OK")
    assert pass_login(srv, "alice", PW + code) == FAILED  # S-122: a code works once
    assert "reason=\"totp_code_wrong_or_reused\"" in srv.log_text()
    assert pass_login(srv, "alice", "Wrong-pass" + oathtool(secret)) == FAILED
    # SCRAM proves the password alone: refused with TOTP on (it fails at the proof)
    assert scram_login(srv.connect()) == FAILED
    assert "method=SCRAM-SHA-256 reason=\"totp_required\"" in srv.log_text()
    # a recovery code after the password, once
    assert pass_login(srv, "alice", PW + codes[0]).startswith(b"+OK")
    assert pass_login(srv, "alice", PW + codes[0]) == FAILED
    assert "event=recovery_code_used user=alice" in srv.log_text()
    # app passwords still work on their own
    apppw = ctl(srv, "app-password", "add", "alice", "--name", "tablet").splitlines()[0]
    assert pass_login(srv, "alice", apppw).startswith(b"+OK")
    ctl(srv, "totp", "disable", "alice")
    assert pass_login(srv, "alice", PW).startswith(b"+OK")


def apop_digest(greeting, secret):
    ts = re.search(rb"<[^<>]+@[^<>]+>", greeting).group(0)
    return hashlib.md5(ts + secret.encode()).hexdigest()


def test_s018_no_timestamp_without_apop(srv):
    c = srv.connect()
    assert b"<" not in c.greeting
    assert c.cmd("APOP alice " + "0" * 32) == b"-ERR APOP is not offered\r\n"


def test_s016_s029_s030_apop(gannet):
    s = gannet(users=(), start=False, apop="yes")
    s.add_user("alice", password=PW)
    s.add_user("bob", password="Bob-pass-99")
    s.start()
    ctl(s, "apop", "enable", "alice", "--password-stdin", stdin=b"tanstaaf\n")
    c = s.connect()
    assert re.fullmatch(rb"\+OK gannet\.test Gannet POP3 server ready <[0-9a-f]{16}\.\d+@"
                        rb"gannet\.test>\r\n", c.greeting), c.greeting
    assert c.cmd("APOP alice " + "0" * 32) == FAILED
    assert c.cmd("APOP alice " + apop_digest(c.greeting, "tanstaaf")).startswith(b"+OK")
    c.quit()
    c = s.connect()  # S-030: upper-case hex is accepted too
    assert c.cmd("APOP alice " + apop_digest(c.greeting, "tanstaaf").upper()).startswith(b"+OK")
    c.quit()
    c = s.connect()  # a digest for another greeting's timestamp fails
    other = s.connect()
    assert c.cmd("APOP alice " + apop_digest(other.greeting, "tanstaaf")) == FAILED
    # bob has no APOP secret: refused the same way
    assert c.cmd("APOP bob " + apop_digest(c.greeting, "Bob-pass-99")) == FAILED
    assert "user=bob method=APOP reason=\"apop_not_enabled\"" in s.log_text()


def test_s017_apop_timestamps_unique(gannet):
    s = gannet(apop="yes")
    seen = set()
    for _ in range(300):
        c = s.connect()
        seen.add(re.search(rb"<[^<>]+>", c.greeting).group(0))
        c.close()
    assert len(seen) == 300


def test_mpop_apop(gannet, tmp_path):
    s = gannet(users=(), start=False, apop="yes")
    s.add_user("alice", password=PW)
    s.start()
    ctl(s, "apop", "enable", "alice", "--password-stdin", stdin=b"Apop-Secret-42\n")
    s.maildir("alice").deliver(g.header("apop") + b"body\n")
    out_dir = g.Maildir(tmp_path / "out")
    rc = tmp_path / "mpoprc"
    rc.write_text("account default\nhost 127.0.0.1\nport %d\nuser alice\npassword Apop-Secret-42\n"
                  "auth apop\ntls off\nkeep on\ndelivery maildir %s\nuidls_file %s\n"
                  % (s.port, out_dir.root, tmp_path / "uidls"))
    rc.chmod(0o600)
    p = subprocess.run(["mpop", "-C", str(rc), "-q"], capture_output=True, timeout=g.t(60))
    assert p.returncode == 0, p
    assert len(out_dir.contents()) == 1
    assert "event=auth_ok user=alice method=APOP tls=no" in s.log_text()


def test_user_del_forgets_security_records(srv):
    apppw = ctl(srv, "app-password", "add", "bob", "--name", "phone").splitlines()[0]
    ctl(srv, "apop", "enable", "bob", "--password-stdin", stdin=b"Bob-apop-secret-1\n")
    ctl(srv, "user", "del", "bob")
    assert "bob" not in open(srv.auth_dir + "/app-passwords").read()
    assert "bob" not in open(srv.auth_dir + "/apop").read()
    # a new bob does not inherit the old one's app password
    ctl(srv, "user", "add", "bob", "--home", srv.users["bob"][1], "--password-stdin",
        stdin=b"New-bob-pass-77\nNew-bob-pass-77\n")
    assert pass_login(srv, "bob", apppw) == FAILED
    assert pass_login(srv, "bob", "New-bob-pass-77").startswith(b"+OK")
