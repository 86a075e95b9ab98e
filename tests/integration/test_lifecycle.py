"""Process life cycle: gannetd -n, idle timeout, SIGHUP reload, SIGTERM drain, logging.

S-072..S-075; the config contract (FILE:LINE errors); log hygiene.
"""

import os
import re
import signal
import socket
import subprocess
import time

import pytest

import gannettest as g


def check_config(srv, text):
    srv.write_config(text)
    return subprocess.run([g.GANNETD, "-n", "-c", srv.conf_path], capture_output=True,
                          timeout=g.t(20), env=g.run_env(), stdin=subprocess.DEVNULL)


def test_config_check_ok(gannet):
    """gannetd -n on a good config prints 'configuration OK' and exits 0."""
    srv = gannet(start=False)
    r = check_config(srv, srv.config_text())
    out = (r.stdout + r.stderr).decode()
    assert r.returncode == 0, out
    assert "configuration OK" in out


@pytest.mark.parametrize("key,value", [
    ("idle_timeout", "599"),          # S-073: RFC 1939 minimum is 10 minutes
    ("idle_timeout", "abc"),
    ("max_bad_commands", "9"),
    ("test_idle_timeout", "600"),
    ("tls_min_version", "TLSv1.1"),
    ("isolation", "sometimes"),
    ("disable_plaintext_auth", "maybe"),
    ("trusted_networks", "300.0.0.0/8"),
    ("no_such_setting", "1"),
], ids=lambda v: str(v))
def test_config_check_errors_point_at_file_and_line(gannet, key, value):
    """A bad value -> non-zero exit and a 'FILE:LINE: message' naming the offending line."""
    srv = gannet(start=False)
    text = srv.config_text(extra_lines=["# filler", "%s = %s" % (key, value)])
    lineno = len(text.splitlines())
    # a later duplicate overrides or is flagged; put the bad line last so LINE is certain
    r = check_config(srv, text)
    out = (r.stdout + r.stderr).decode()
    assert r.returncode != 0, out
    assert "%s:%d:" % (srv.conf_path, lineno) in out, out
    assert "configuration OK" not in out


def test_s073_idle_timeout_600_accepted(gannet):
    srv = gannet(start=False)
    r = check_config(srv, srv.config_text(extra_lines=["idle_timeout = 600"]))
    assert r.returncode == 0, r


def test_gannetd_refuses_to_start_with_bad_config(gannet):
    srv = gannet(start=False)
    srv.settings["idle_timeout"] = "599"
    srv.write_config()
    r = subprocess.run([g.GANNETD, "-d", "-c", srv.conf_path], capture_output=True,
                       timeout=g.t(20), env=g.run_env(), stdin=subprocess.DEVNULL)
    assert r.returncode != 0
    assert srv.conf_path.encode() in r.stderr + r.stdout


@pytest.mark.parametrize("isolation", ["shared", "per-connection"])
def test_s075_idle_timeout_closes_silently_without_update(gannet, isolation):
    """S-075: with test_idle_timeout = 2, an idle TRANSACTION session is closed with no bytes
    after ~2 s, and its DELE is not applied (S-072)."""
    srv = gannet(isolation=isolation, test_idle_timeout="2")
    srv.maildir("alice").deliver(g.header("idle") + b"x\n")
    c = srv.login("alice")
    assert c.cmd("DELE 1").startswith(b"+OK")
    t0 = time.monotonic()
    got = c.wait_closed(g.t(2) + 6)
    elapsed = time.monotonic() - t0
    assert got == b"", got
    assert elapsed >= 1.5, "closed after %.1fs, before the idle timeout" % elapsed
    assert len(srv.maildir("alice").contents()) == 1


def test_idle_timeout_in_authorization(gannet):
    srv = gannet(test_idle_timeout="2")
    c = srv.connect()
    c.cmd("USER alice")
    t0 = time.monotonic()
    assert c.wait_closed(g.t(2) + 6) == b""
    assert time.monotonic() - t0 >= 1.5


def test_s074_commands_reset_idle_timer(gannet):
    """S-074: a NOOP every second keeps a session with a 2 s idle timeout alive for 6 s."""
    srv = gannet(test_idle_timeout="2")
    c = srv.login("alice")
    for _ in range(6):
        time.sleep(1)
        assert c.cmd("NOOP").startswith(b"+OK")
    assert c.cmd("STAT") == b"+OK 0 0\r\n"


def test_sighup_with_broken_config_keeps_running(gannet):
    """SIGHUP with a broken config: the old config stays, sessions and new logins work, and the
    log says why (it names the config file)."""
    srv = gannet()
    srv.maildir("alice").deliver(g.header("hup") + b"x\n")
    c = srv.login("alice")
    before = len(srv.log_text())
    srv.write_config(srv.config_text(extra_lines=["idle_timeout = 5", "this line is junk"]))
    srv.reload()
    deadline = time.monotonic() + g.t(5)
    while time.monotonic() < deadline and os.path.basename(srv.conf_path) not in \
            srv.log_text()[before:]:
        time.sleep(0.1)
    assert os.path.basename(srv.conf_path) in srv.log_text()[before:], srv.log_text()[before:]
    assert srv.alive()
    assert c.cmd("STAT").startswith(b"+OK 1 ")
    d = srv.login("bob")
    assert d.cmd("STAT") == b"+OK 0 0\r\n"
    assert srv.connect(tls=True).greeting.startswith(b"+OK")
    assert c.quit().startswith(b"+OK")


def test_sighup_applies_new_config(gannet):
    """SIGHUP with a good config: new connections get the new settings (trusted_networks now
    empty -> no USER before STLS); the existing session keeps working."""
    srv = gannet()
    c = srv.login("alice")
    srv.settings["trusted_networks"] = ""
    srv.write_config()
    srv.reload()
    deadline = time.monotonic() + g.t(5)
    while True:
        d = srv.connect()
        caps = d.capa()
        if "USER" not in caps:
            break
        d.close()
        assert time.monotonic() < deadline, "reload not applied: CAPA still lists USER"
        time.sleep(0.2)
    assert d.cmd("USER bob").startswith(b"-ERR [AUTH]")
    assert c.cmd("STAT") == b"+OK 0 0\r\n"
    assert srv.alive()


@pytest.mark.parametrize("isolation", ["shared", "per-connection"])
def test_s072_sigterm_drains_without_update(gannet, isolation):
    """SIGTERM: new connections are refused, an active session keeps working during
    shutdown_grace, then is closed without UPDATE; gannetd exits 0."""
    srv = gannet(isolation=isolation, shutdown_grace="3")
    srv.maildir("alice").deliver(g.header("term") + b"x\n")
    c = srv.login("alice")
    assert c.cmd("DELE 1").startswith(b"+OK")
    srv.expect_exit = True
    t0 = time.monotonic()
    srv.signal(signal.SIGTERM)
    time.sleep(0.3)
    assert c.cmd("NOOP").startswith(b"+OK")        # still served during the grace period
    refused = False
    deadline = time.monotonic() + g.t(2)
    while time.monotonic() < deadline:
        try:
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=1)
            s.close()
            time.sleep(0.1)
        except ConnectionRefusedError:
            refused = True
            break
    assert refused, "new connections still accepted after SIGTERM"
    try:
        got = c.wait_closed(3 + g.t(10))
    except socket.timeout:
        pytest.fail("session not closed after shutdown_grace")
    elapsed = time.monotonic() - t0
    assert elapsed >= 2.0, "session closed %.1fs after SIGTERM, before shutdown_grace" % elapsed
    assert not got.startswith(b"+OK"), got
    rc = srv.proc.wait(g.t(10))
    assert rc == 0, "gannetd exited with %s after SIGTERM" % rc
    assert len(srv.maildir("alice").contents()) == 1


def test_sigterm_idle_server_exits_zero(gannet):
    """SIGTERM with no session: gannetd exits 0 within shutdown_grace plus a bound."""
    srv = gannet(shutdown_grace="5")
    srv.expect_exit = True
    srv.signal(signal.SIGTERM)
    rc = srv.proc.wait(5 + g.t(10))
    assert rc == 0


def test_log_lines_have_session_and_ip_and_no_passwords(gannet):
    """Logs: session events carry session= and ip= (ip before user=); no password ever appears
    (the fixture checks every password of every test; this test makes sure there was a log)."""
    srv = gannet(log_level="debug")
    c = srv.connect()
    c.cmd("USER alice")
    c.cmd("PASS Wrong-password-log-1")
    c.cmd("USER nosuchuser")
    c.cmd("PASS Wrong-password-log-2")
    c.login("alice", srv.password("alice"))
    c.quit()
    c = srv.login("bob", tls=True)
    c.quit()
    time.sleep(0.3)
    log = srv.log_text()
    lines = [ln for ln in log.splitlines() if "session=" in ln]
    assert lines, log[-2000:]
    assert any("ip=127.0.0.1" in ln for ln in lines), lines[:5]
    for ln in lines:
        assert "ip=" in ln, ln
        if "user=" in ln:
            assert ln.index("ip=") < ln.index("user="), ln
    for pw in ("Wrong-password-log-1", "Wrong-password-log-2", srv.password("alice"),
               srv.password("bob")):
        assert pw not in log
    sessions = {m.group(1) for m in re.finditer(r"session=(\S+)", log)}
    assert len(sessions) >= 2, sessions
