"""fail2ban support: etc/fail2ban/filter.d/gannetd.conf and jail.d/gannetd.conf, checked with the
real gannetd log, the real fail2ban-regex and the real fail2ban-server (Debian fail2ban).

The filter must match every failed login (wrong password, unknown user, and the lead's refusal of a
blocked address, event=auth_blocked) with the address the connection came from, never a
successful login, and no user name may move the ban to another address: the address is taken from
the fixed `session=... ip=...` prefix that gannetd writes before any client text.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

import gannettest as g

F2B_REGEX = "/usr/bin/fail2ban-regex"
F2B_CLIENT = "/usr/bin/fail2ban-client"
F2B_ETC = "/etc/fail2ban"
FILTER = os.path.join(g.REPO, "etc", "fail2ban", "filter.d", "gannetd.conf")
JAIL = os.path.join(g.REPO, "etc", "fail2ban", "jail.d", "gannetd.conf")

AUTH_FAILED = b"-ERR [AUTH] Authentication failed\r\n"
# gannetd's own defence (growing delays, address blocks) would slow these tests down and turn
# failures into refusals; the tests that want a block turn it back on.
NO_PENALTY = {"auth_failure_delay": "0", "auth_ip_max_failures": "100000"}

# One line of `gannetd -d` (lib/log.c): local time with milliseconds, process name, pid, message.
LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.\d{3} "
                      r"(gannetd(?:/[a-z]+)?)\[\d+\]: (.*)$")
# A session event: the server writes session and ip before any client-controlled field.
SESSION_EVENT = re.compile(r"^session=[0-9a-f]{16} ip=(\S+) event=(\S+)(?: (.*))?$")
# What fail2ban must count: failed logins and refused addresses, minus server-side trouble.
FAIL_EVENTS = ("auth_failed", "auth_blocked")
SERVER_SIDE = re.compile(r'^(?:reason=queue_full|method=\S+ reason="too_many_exchanges"'
                         r'|user=\S*(?: [a-z_]+=\S+)* reason="token_table_full")$')

ATTACK_ADDRS = ("1.2.3.4", "6.6.6.6", "6.6.6.7", "2001:db8::6")

pytestmark = pytest.mark.skipif(
    not (os.access(F2B_REGEX, os.X_OK) and os.access(F2B_CLIENT, os.X_OK)),
    reason="Debian fail2ban is not installed (apt-get install fail2ban)")


# ---------------------------------------------------------------------------------------------
# Helpers


def ipv6_loopback_port():
    """A free port on ::1, or None when this host has no IPv6 loopback."""
    if not socket.has_ipv6:
        return None
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
            return s.getsockname()[1]
    except OSError:
        return None


def make_server(gannet, users=("alice", "bob"), v6=True, **settings):
    """A started gannetd; with V6 it also listens on [::1] (srv.port6, None when impossible)."""
    conf = dict(NO_PENALTY)
    conf.update(settings)
    srv = gannet(users=users, tls=False, start=False, **conf)
    srv.port6 = ipv6_loopback_port() if v6 else None
    if srv.port6 is not None:
        orig = srv.config_text

        def config_text(extra_lines=()):
            out = []
            for ln in orig(extra_lines).splitlines():
                if ln.startswith("listen = "):
                    ln += " [::1]:%d" % srv.port6
                out.append(ln)
            return "\n".join(out) + "\n"

        srv.config_text = config_text
    srv.start()
    if srv.port6 is not None:
        wait_listening("::1", srv.port6, srv)
    return srv


def wait_listening(host, port, srv):
    deadline = time.monotonic() + g.t(10)
    while True:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            assert time.monotonic() < deadline, "gannetd not accepting on [%s]:%d; log:\n%s" % (
                host, port, srv.log_tail())
            time.sleep(0.05)


def endpoints(srv):
    """(client address as gannetd logs it, host to connect to, port) for each family."""
    out = [("127.0.0.1", "127.0.0.1", srv.port)]
    if srv.port6 is not None:
        out.append(("::1", "::1", srv.port6))
    return out


def failed_login(srv, host, port, user, password=None):
    """USER/PASS that must fail with [AUTH]. The password is random so the leak check of the
    fixture can tell it never reached the log."""
    c = g.Pop3Conn.open(port, host=host, server=srv)
    assert c.greeting.startswith(b"+OK"), c.greeting
    assert c.cmd("USER " + user) == b"+OK\r\n", user
    r = c.cmd("PASS " + (password or "Wrong-" + os.urandom(6).hex()))
    assert r == AUTH_FAILED, (user, r)
    assert c.quit() == b"+OK Bye\r\n"


def good_login(srv, host, port, user):
    c = g.Pop3Conn.open(port, host=host, server=srv)
    assert c.greeting.startswith(b"+OK"), c.greeting
    c.login(user, srv.password(user))
    assert c.cmd("STAT") == b"+OK 0 0\r\n"
    assert c.quit().startswith(b"+OK")


def stop_server(srv):
    """Stop gannetd so that every line is in the log before fail2ban reads it."""
    srv.expect_exit = True
    assert srv.stop() == 0, srv.log_tail()


def parse_log(text):
    """[(line, stamp, procname, ip, event, rest)] for the session events of a gannetd log; every
    line of the log must be a well-formed lib/log.c line."""
    out = []
    for line in text.splitlines():
        m = LOG_LINE.match(line)
        assert m, "not a gannetd log line: %r" % line
        s = SESSION_EVENT.match(m.group(3))
        if s:
            out.append((line, m.group(1), m.group(2), s.group(1), s.group(2), s.group(3) or ""))
    return out


def fail_lines(events):
    """The (ip, line) pairs fail2ban must count, found by the strict parse above."""
    return [(ip, line) for line, _st, _p, ip, ev, rest in events
            if ev in FAIL_EVENTS and not SERVER_SIDE.match(rest)]


def f2b_regex(logpath, filt=FILTER):
    """Run the real fail2ban-regex twice over LOGPATH: once printing (time, ip, line) for each
    failure, once for the summary. Returns a dict."""
    base = [F2B_REGEX, "-r", "-e", "UTF-8"]
    out = subprocess.run(base + ["-o", "<time> <ip> <msg>", logpath, filt], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out
    hits = []
    for ln in out.stdout.splitlines():
        t, ip, msg = ln.split(" ", 2)
        hits.append((float(t), ip, msg))
    summ = subprocess.run(base + ["--print-all-matched", "--print-all-missed",
                                  "--print-all-ignored", logpath, filt],
                          capture_output=True, text=True, timeout=120)
    assert summ.returncode == 0, summ
    m = re.search(r"^Lines: (\d+) lines, (\d+) ignored, (\d+) matched, (\d+) missed", summ.stdout,
                  re.M)
    assert m, summ.stdout
    fr = re.search(r"^Failregex: (\d+) total", summ.stdout, re.M)
    ir = re.search(r"^Ignoreregex: (\d+) total", summ.stdout, re.M)
    date_part = summ.stdout.split("Date template hits:")[1].split("Lines:")[0]
    dates = [int(x) for x in re.findall(r"^\|\s+\[(\d+)\] ", date_part, re.M)]
    return {"hits": hits, "lines": int(m.group(1)), "ignored": int(m.group(2)),
            "matched": int(m.group(3)), "missed": int(m.group(4)), "failregex": int(fr.group(1)),
            "ignoreregex": int(ir.group(1)), "date_hits": sum(dates), "text": summ.stdout}


def local_epoch(stamp):
    return int(time.mktime(time.strptime(stamp, "%Y-%m-%dT%H:%M:%S")))


def check_log_against_filter(srv, expected_fail_ips):
    """The core contract over a real log: fail2ban-regex matches exactly the failure lines, each
    with the address it came from and its own time, and nothing else. Returns the parse."""
    text = srv.log_text()
    events = parse_log(text)
    want = fail_lines(events)
    assert sorted(ip for ip, _l in want) == sorted(expected_fail_ips), (want, text)
    r = f2b_regex(srv.log_path)
    n_lines = len([ln for ln in text.splitlines() if ln])
    got = [(ip, msg) for _t, ip, msg in r["hits"]]
    assert got == want, r["text"]
    # Each failure carries its own time: gannetd's timestamp is one fail2ban reads by itself.
    stamps = {line: st for line, st, *_ in events}
    assert [int(t) for t, _ip, _m in r["hits"]] == [local_epoch(stamps[m]) for _t, _ip, m in
                                                    r["hits"]]
    assert (r["lines"], r["ignored"], r["matched"], r["missed"]) == (
        n_lines, 0, len(want), n_lines - len(want)), r["text"]
    assert r["failregex"] == len(want) and r["ignoreregex"] == 0, r["text"]
    assert r["date_hits"] == n_lines, r["text"]
    return events


def log_escape(s):
    """What log_sanitize (lib/log.c) would make of S."""
    return "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\' else "\\x%02x" % ord(c)
                   for c in s)


def no_control_bytes(text):
    bad = [c for c in text if (ord(c) < 0x20 and c != "\n") or ord(c) == 0x7F]
    assert not bad, "control bytes in the gannetd log: %r" % sorted(set(bad))


# ---------------------------------------------------------------------------------------------
# The real daemon, the real fail2ban-regex


def test_failures_matched_with_their_address_successes_not(gannet):
    """Wrong passwords and unknown users from 127.0.0.1 and ::1 are matched, each with its own
    address and time; successful logins (auth_ok, login, logout lines) are not."""
    srv = make_server(gannet)
    expected = []
    for ip, host, port in endpoints(srv):
        failed_login(srv, host, port, "alice")  # wrong password
        failed_login(srv, host, port, "bob")
        failed_login(srv, host, port, "nosuchuser")  # unknown user
        good_login(srv, host, port, "alice")
        failed_login(srv, host, port, "carol@example.org")
        good_login(srv, host, port, "bob")
        expected += [ip] * 4
    stop_server(srv)
    events = check_log_against_filter(srv, expected)
    reasons = sorted(rest.rsplit(" ", 1)[1] for _l, _s, _p, _ip, ev, rest in events
                     if ev == "auth_failed")
    n = len(endpoints(srv))
    assert reasons == sorted(['reason="unknown_user"'] * 2 * n
                             + ['reason="wrong_password"'] * 2 * n)
    # Each success is in the log (the mail process's login line, and auth_ok lines), unmatched:
    # check_log_against_filter compared the matches with the failure lines exactly.
    assert len([e for e in events if e[4] == "login"]) == 2 * n
    assert len([e for e in events if e[4] == "auth_ok"]) >= 2 * n


INJECTED = [
    "rhost=1.2.3.4",
    "ip=6.6.6.6",
    "6.6.6.6",
    "x@6.6.6.6",
    "user=6.6.6.6",
    "from=6.6.6.6",
    "session=0000000000000000",
    'a"ip=6.6.6.6"',
    "\\x0aip=6.6.6.6",
    "reason=queue_full",
    "event=auth_ok",
    "ip=6.6.6.6@6.6.6.6",
]
# Names USER must refuse (space, ':', control bytes): they never get as far as a log line.
REFUSED = ["from 6.6.6.6", "x ip=6.6.6.6", "ip=[2001:db8::6]", "x]:ip=1.2.3.4",
           "a\x01ip=6.6.6.6", "a\x1bip=6.6.6.6", "a\x7fip=6.6.6.6", "a\x0bip=6.6.6.6",
           "a\x0cip=6.6.6.6", "a\tip=6.6.6.6"]


def test_injected_user_names_do_not_move_the_address(gannet):
    """User names that look like addresses or log fields are matched with the real client
    address; names with a space or control byte are refused by USER and never logged."""
    srv = make_server(gannet, users=("alice", "ip=6.6.6.6", "event=auth_failed"))
    expected = []
    for ip, host, port in endpoints(srv):
        for name in INJECTED:
            failed_login(srv, host, port, name)
            expected.append(ip)
        # Accounts whose names are address-like log successfully, and must not match.
        good_login(srv, host, port, "ip=6.6.6.6")
        good_login(srv, host, port, "event=auth_failed")
        failed_login(srv, host, port, "ip=6.6.6.6")  # wrong password for a real account
        expected.append(ip)
        for name in REFUSED:  # one connection each: max_bad_commands stays out of the way
            c = g.Pop3Conn.open(port, host=host, server=srv)
            r = c.cmd(b"USER " + name.encode())
            assert r.startswith(b"-ERR"), (name, r)
            assert c.cmd("PASS Wrong-" + os.urandom(6).hex()) == b"-ERR USER first\r\n"
            assert c.quit() == b"+OK Bye\r\n"
    stop_server(srv)
    text = srv.log_text()
    no_control_bytes(text)
    for name in REFUSED:
        assert name not in text and log_escape(name) not in text, name
    check_log_against_filter(srv, expected)
    r = f2b_regex(srv.log_path)
    assert {ip for _t, ip, _m in r["hits"]} == {ip for ip, _h, _p in endpoints(srv)}
    for addr in ATTACK_ADDRS:
        assert addr not in {ip for _t, ip, _m in r["hits"]}
    # And the real fail2ban-server bans exactly the client addresses.
    clients = sorted(ip for ip, _h, _p in endpoints(srv))
    banned, found, total = run_fail2ban_server(srv.log_path, clients, len(expected))
    assert banned == clients and total == len(expected), (banned, total)
    assert found == expected, found


def test_blocked_address_is_matched(gannet):
    """With gannetd's own block at 2 failures, each refusal of the blocked address
    (event=auth_blocked) is matched with that address too, for IPv4 and IPv6. gannetd never
    blocks trusted_networks, so loopback is made untrusted here (and plaintext allowed)."""
    srv = make_server(gannet, auth_failure_delay="0", auth_ip_max_failures="2",
                      auth_ip_block_time="600", trusted_networks="192.0.2.0/24",
                      disable_plaintext_auth="no")
    expected = []
    for ip, host, port in endpoints(srv):
        failed_login(srv, host, port, "alice")
        failed_login(srv, host, port, "nosuchuser")
        for _ in range(2):  # refused even with the right password
            c = g.Pop3Conn.open(port, host=host, server=srv)
            assert c.cmd("USER alice") == b"+OK\r\n"
            r = c.cmd("PASS " + srv.password("alice"))
            assert r.startswith(b"-ERR [SYS/TEMP] "), r
            assert c.quit() == b"+OK Bye\r\n"
        expected += [(ip, "auth_failed")] * 2 + [(ip, "auth_blocked")] * 2
    stop_server(srv)
    events = check_log_against_filter(srv, [ip for ip, _ev in expected])
    assert [(ip, ev) for _l, _s, _p, ip, ev, _r in events if ev in FAIL_EVENTS] == expected


# ---------------------------------------------------------------------------------------------
# Lines the real daemon cannot produce today (AUTH PLAIN identities with spaces, forged prefixes,
# the syslog and journal shapes), built the way lib/log.c builds them.


def gannet_line(msg, proc="gannetd/auth", pid=809, when=None, shape="stderr"):
    when = when if when is not None else time.time()
    lt = time.localtime(when)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", lt) + ".%03d" % (int(when * 1000) % 1000)
    if shape == "stderr":  # gannetd -d with stderr in a file
        return "%s %s[%d]: %s" % (stamp, proc, pid, msg)
    # rsyslog: the traditional date, or the RFC 3339 one Debian 12 writes by default.
    offset = time.strftime("%z", lt)
    offset = offset[:3] + ":" + offset[3:]
    syslog_date = (time.strftime("%b %d %H:%M:%S", lt) if not shape.endswith("-iso") else
                   time.strftime("%Y-%m-%dT%H:%M:%S", lt) + ".%06d" % (int(when * 1e6) % 1000000)
                   + offset)
    if shape.startswith("syslog"):  # gannetd without -d, /var/log/mail.log
        return "%s mx1 gannetd[807]: %s: %s" % (syslog_date, proc, msg)
    if shape.startswith("journal"):  # gannetd -d under systemd, forwarded by rsyslog
        if shape.startswith("journal-tz"):  # should gannetd ever log its UTC offset
            stamp += offset
        return "%s mx1 gannetd[807]: %s %s[%d]: %s" % (syslog_date, stamp, proc, pid, msg)
    raise ValueError(shape)


SHAPES = ("stderr", "syslog", "syslog-iso", "journal", "journal-iso", "journal-tz-iso")


# Identities a SASL client could send (after the server escaped its control bytes).
EVIL_USERS = [
    "from 6.6.6.6",
    "x ip=6.6.6.6 event=auth_failed",
    "x gannetd/auth[1]: session=0000000000000000 ip=6.6.6.6 event=auth_failed user=y",
    "x\\x0a2024-01-01T00:00:00.000 gannetd/auth[1]: session=0 ip=6.6.6.6 event=auth_failed",
    'x" rhost=1.2.3.4 "',
    "rhost=1.2.3.4 ip=[2001:db8::6]",
    "x reason=queue_full",
    'x reason="token_table_full"',
    'x method=PLAIN reason="too_many_exchanges"',
]


def test_crafted_lines_cannot_supply_the_address(tmp_path):
    """Whatever follows `event=`, the match is the address in the fixed prefix, in every log
    shape; server-side failures are ignored but a user name cannot fake one."""
    now = time.time() - 5
    lines, want = [], []
    for shape in SHAPES:
        for i, user in enumerate(EVIL_USERS):
            ip = "192.0.2.%d" % (i + 1) if i % 2 else "2001:db8:1::%x" % (i + 1)
            method = " method=PLAIN" if i % 3 else ""  # with and without the method field
            lines.append(gannet_line('session=5529627d8aa4d9a5 ip=%s event=auth_failed user=%s%s '
                                     'reason="wrong_password"' % (ip, user, method), when=now,
                                     shape=shape))
            want.append((ip, lines[-1]))
        # A SASL start refused before any user name: the mechanism is client text.
        sasl = gannet_line('session=5529627d8aa4d9a5 ip=203.0.113.9 event=auth_failed '
                           'method=X ip=6.6.6.6 reason="unknown mechanism"', when=now,
                           shape=shape)
        lines.append(sasl)
        want.append(("203.0.113.9", sasl))
        blocked = gannet_line("session=5529627d8aa4d9a5 ip=198.51.100.7 event=auth_blocked "
                              "user=from=6.6.6.6 retry_after=600", when=now, shape=shape)
        lines.append(blocked)
        want.append(("198.51.100.7", blocked))
        master = gannet_line("session=5529627d8aa4d9a5 ip=198.51.100.8 event=auth_blocked",
                             proc="gannetd", pid=807, when=now, shape=shape)
        lines.append(master)
        want.append(("198.51.100.8", master))
        # Not failures: success and other events carrying attacker text, server-side trouble.
        lines += [
            gannet_line("session=5529627d8aa4d9a5 ip=192.0.2.50 event=auth_ok "
                        "user=event=auth_failed method=PASS tls=no", proc="gannetd/login",
                        when=now, shape=shape),
            gannet_line("session=5529627d8aa4d9a5 ip=192.0.2.51 event=login user=x ip=6.6.6.6 "
                        "event=auth_failed", proc="gannetd/mail", when=now, shape=shape),
            gannet_line("event=auth_failed session=5529627d8aa4d9a5 ip=6.6.6.6", when=now,
                        shape=shape),
            gannet_line("session=5529627d8aa4d9a5 ip=192.0.2.52 event=auth_failedx user=a "
                        'reason="x"', when=now, shape=shape),
            gannet_line("notgannetd: session=5529627d8aa4d9a5 ip=6.6.6.6 event=auth_failed",
                        proc="other", when=now, shape=shape),
        ]
    ignored = []
    for shape in SHAPES:
        ignored += [
            gannet_line("session=5529627d8aa4d9a5 ip=192.0.2.60 event=auth_failed "
                        "reason=queue_full", when=now, shape=shape),
            gannet_line('session=5529627d8aa4d9a5 ip=192.0.2.61 event=auth_failed user=alice '
                        'reason="token_table_full"', when=now, shape=shape),
            gannet_line('session=5529627d8aa4d9a5 ip=192.0.2.62 event=auth_failed user=alice '
                        'method=PASS reason="token_table_full"', when=now, shape=shape),
            gannet_line('session=5529627d8aa4d9a5 ip=192.0.2.63 event=auth_failed '
                        'method=SCRAM-SHA-256 reason="too_many_exchanges"', when=now, shape=shape),
        ]
    log = tmp_path / "crafted.log"
    log.write_text("\n".join(lines + ignored) + "\n")
    r = f2b_regex(str(log))
    got = [(ip, msg) for _t, ip, msg in r["hits"]]
    assert got == want, r["text"]
    # Every shape's date is read, and read as the right instant.
    assert [int(t) for t, _ip, _m in r["hits"]] == [int(now)] * len(want)
    assert (r["lines"], r["ignored"], r["matched"]) == (len(lines) + len(ignored), len(ignored),
                                                        len(want)), r["text"]
    assert r["date_hits"] == len(lines) + len(ignored), r["text"]
    for addr in ATTACK_ADDRS:
        assert addr not in {ip for ip, _m in got}


def test_journal_entries_as_fail2ban_formats_them(tmp_path):
    """backend = systemd: fail2ban's own journal formatter (FilterSystemd.formatJournalEntry)
    turns the entries of the shipped unit (gannetd -d: stderr lines, gannetd's stamp inside) and
    of gannetd logging to syslog into lines the filter matches with the right address."""
    import datetime
    fsd = pytest.importorskip("fail2ban.server.filtersystemd")

    class Jail:  # what formatJournalEntry needs of its filter
        jailName = "gannetd"
        getJrnEntTime = fsd.FilterSystemd.getJrnEntTime

        def getLogEncoding(self):
            return "UTF-8"

    now = time.time() - 5
    entries, want = [], []
    for i, (ident, msg) in enumerate([
        ("gannetd", gannet_line('session=5529627d8aa4d9a5 ip=192.0.2.7 event=auth_failed '
                                'user=x ip=6.6.6.6 reason="wrong_password"', when=now)),
        ("gannetd", 'gannetd/auth: session=5529627d8aa4d9a5 ip=2001:db8::7 event=auth_failed '
                    'user=rhost=1.2.3.4 reason="unknown_user"'),
        ("gannetd", "gannetd: session=5529627d8aa4d9a5 ip=198.51.100.7 event=auth_blocked"),
        ("gannetd", gannet_line("session=5529627d8aa4d9a5 ip=192.0.2.8 event=auth_ok user=a "
                                "method=PASS tls=no", proc="gannetd/login", when=now)),
    ]):
        entries.append({"_HOSTNAME": "mx1", "SYSLOG_IDENTIFIER": ident, "_PID": 807,
                        "MESSAGE": msg,
                        "__REALTIME_TIMESTAMP": datetime.datetime.fromtimestamp(now)})
        want += [("192.0.2.7", "2001:db8::7", "198.51.100.7", None)[i]]
    lines = []
    for e in entries:
        (pre, date, rest), _t = fsd.FilterSystemd.formatJournalEntry(Jail(), e)
        lines.append(pre + date + rest)
    log = tmp_path / "journal.log"
    log.write_text("\n".join(lines) + "\n")
    r = f2b_regex(str(log))
    got = [(ip, msg) for _t, ip, msg in r["hits"]]
    assert got == [(ip, ln) for ip, ln in zip(want, lines) if ip is not None], r["text"]
    assert [int(t) for t, _ip, _m in r["hits"]] == [int(now)] * 3
    assert (r["lines"], r["matched"], r["date_hits"]) == (4, 3, 4), r["text"]


# ---------------------------------------------------------------------------------------------
# The real fail2ban-server and the jail example


def f2b_confdir(tmp):
    """A private copy of Debian's /etc/fail2ban without its jails, plus our filter."""
    conf = os.path.join(tmp, "conf")
    shutil.copytree(F2B_ETC, conf, ignore=shutil.ignore_patterns("*.local", "jail.d", "fail2ban.d"))
    os.makedirs(os.path.join(conf, "jail.d"))
    shutil.copy(FILTER, os.path.join(conf, "filter.d", "gannetd.conf"))
    with open(os.path.join(conf, "fail2ban.local"), "w") as f:
        f.write("[Definition]\nloglevel = INFO\nlogtarget = %s\nsocket = %s\npidfile = %s\n"
                "dbfile = :memory:\n" % (os.path.join(tmp, "f2b.log"), os.path.join(tmp, "sock"),
                                         os.path.join(tmp, "pid")))
    return conf


def f2b_status(conf):
    out = subprocess.run([F2B_CLIENT, "-c", conf, "status", "gannetd"], capture_output=True,
                         text=True, timeout=30)
    if out.returncode != 0:
        return None
    total = re.search(r"Total failed:\s+(\d+)", out.stdout)
    ips = re.search(r"Banned IP list:\s*(.*)$", out.stdout, re.M)
    return int(total.group(1)), sorted(ips.group(1).split())


def run_fail2ban_server(logpath, want_banned, n_failures):
    """Run fail2ban-server over LOGPATH (jail: maxretry 1, no action, nothing ignored) until it
    has counted N_FAILURES and banned every address in WANT_BANNED. Returns (banned addresses,
    [address of each failure the server found], total failures counted)."""
    tmp = tempfile.mkdtemp(prefix="f2b-", dir="/tmp")  # short: the socket path is bounded
    conf = f2b_confdir(tmp)
    with open(os.path.join(conf, "jail.d", "gannetd.local"), "w") as f:
        f.write("[gannetd]\nenabled = true\nfilter = gannetd\nbackend = polling\njournalmatch =\n"
                "logpath = %s\nmaxretry = 1\nfindtime = 1d\nbantime = 1h\nignoreself = false\n"
                "ignoreip =\naction =\n" % logpath)
    out = open(os.path.join(tmp, "server.out"), "wb")
    proc = subprocess.Popen([F2B_CLIENT, "-c", conf, "-f", "-x", "start"], stdout=out, stderr=out,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            st = f2b_status(conf)
            if st is not None and st[0] >= n_failures and set(want_banned) <= set(st[1]):
                break
            assert proc.poll() is None, open(os.path.join(tmp, "server.out")).read()
            assert time.monotonic() < deadline, (st, open(os.path.join(tmp, "f2b.log")).read())
            time.sleep(0.1)
        with open(os.path.join(tmp, "f2b.log")) as f:
            found = re.findall(r"\[gannetd\] Found (\S+) - ", f.read())
        return st[1], found, st[0]
    finally:
        subprocess.run([F2B_CLIENT, "-c", conf, "stop"], capture_output=True, timeout=60)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        out.close()
        shutil.rmtree(tmp, ignore_errors=True)


def jail_text(enabled=True, file_source=None):
    """The shipped jail, enabled, either as shipped (journal) or switched to a log file."""
    text = open(JAIL).read()
    if enabled:
        text = text.replace("\nenabled  = false\n", "\nenabled  = true\n")
    if file_source is not None:
        text = (text.replace("\nbackend      = systemd\n", "\n#backend      = systemd\n")
                .replace("\njournalmatch = _SYSTEMD_UNIT", "\n#journalmatch = _SYSTEMD_UNIT")
                .replace("\n#backend      = auto\n", "\nbackend      = auto\n")
                .replace("\n#journalmatch =\n", "\njournalmatch =\n")
                .replace("\n#logpath      = /var/log/mail.log\n",
                         "\nlogpath      = %s\n" % file_source))
    return text


def test_jail_example(tmp_path):
    """The shipped jail is disabled; enabled, both log sources pass `fail2ban-client -t`, and the
    journal one reads the gannetd unit only."""
    text = open(JAIL).read()
    assert re.search(r"^enabled\s*=\s*false$", text, re.M)
    assert len(re.findall(r"^enabled\s*=", text, re.M)) == 1
    for source in ("journal", "file"):
        conf = f2b_confdir(str(tmp_path / source))
        log = tmp_path / ("%s.log" % source)
        log.write_text("")
        jt = jail_text(file_source=str(log) if source == "file" else None)
        assert jt != text and ("logpath      = %s" % log in jt) == (source == "file")
        with open(os.path.join(conf, "jail.d", "gannetd.local"), "w") as f:
            f.write(jt)
        t = subprocess.run([F2B_CLIENT, "-c", conf, "-t"], capture_output=True, text=True,
                           timeout=60)
        assert t.returncode == 0 and "OK: configuration test is successful" in t.stdout, t
        d = subprocess.run([F2B_CLIENT, "-c", conf, "-d"], capture_output=True, text=True,
                           timeout=60)
        assert d.returncode == 0, d
        backend = "systemd" if source == "journal" else "auto"
        assert "['add', 'gannetd', '%s']" % backend in d.stdout, d.stdout
        match = "['set', 'gannetd', 'addjournalmatch', '_SYSTEMD_UNIT=gannetd.service']"
        assert (match in d.stdout) == (source == "journal"), d.stdout
        assert "['set', 'gannetd', 'maxretry', 5]" in d.stdout
        assert ("['set', 'gannetd', 'addlogpath', '%s', 'head']" % log in d.stdout) == (
            source == "file"), d.stdout
