"""RFC 2449 policies (issue 3 item 6): EXPIRE (S-041..S-043) and LOGIN-DELAY (S-036, S-037, S-041),
global and per user, and `gannetctl expire`."""

import os
import struct
import subprocess
import time

import gannettest as g

DAY = 86400


def tags(conn):
    status, body = conn.cmd_multi("CAPA")
    assert status.startswith(b"+OK"), status
    return [ln.decode() for ln in g.multiline_lines(body)]


def policy_tags(conn):
    return [t for t in tags(conn) if t.split(" ")[0] in ("EXPIRE", "LOGIN-DELAY")]


def with_extra(srv, **extra):
    """Give users extra fields in the user file: with_extra(srv, alice="login_delay=900")."""
    for user, fields in extra.items():
        srv.extra[user] = fields
    srv.write_users()


def ctl(srv, *args):
    return subprocess.run([g.GANNETCTL] + list(args) + ["--config", srv.conf_path],
                          capture_output=True, timeout=g.t(30), env=g.run_env(),
                          stdin=subprocess.DEVNULL)


# ---- CAPA ----

def test_default_capa_expire_never_only_after_login(gannet):
    """S-042: the default never deletes: EXPIRE NEVER after login; before login nothing (the
    smallest per-user value is unknown to the login process), no LOGIN-DELAY anywhere."""
    srv = gannet()
    assert policy_tags(srv.connect()) == []
    assert policy_tags(srv.login("alice")) == ["EXPIRE NEVER"]


def test_s041_login_delay_per_user(gannet):
    """S-041: user-specific delay 900, global maximum 1800 -> LOGIN-DELAY 1800 USER before login,
    LOGIN-DELAY 900 after; a user without a value gets the global; a larger value is capped."""
    srv = gannet(users=("alice", "bob", "carol"), start=False, login_delay="1800")
    with_extra(srv, alice="login_delay=900", carol="login_delay=3600")
    srv.start()
    assert policy_tags(srv.connect()) == ["LOGIN-DELAY 1800 USER"]
    assert policy_tags(srv.login("alice")) == ["EXPIRE NEVER", "LOGIN-DELAY 900"]
    assert policy_tags(srv.login("bob")) == ["EXPIRE NEVER", "LOGIN-DELAY 1800"]
    assert policy_tags(srv.login("carol")) == ["EXPIRE NEVER", "LOGIN-DELAY 1800"]


def test_s041_expire_per_user(gannet):
    """EXPIRE 5 USER before login (the smallest value); after login each user's own: never, a
    longer value, and a shorter one raised to the global 5."""
    srv = gannet(users=("alice", "bob", "carol", "dave"), start=False, expire_days="5")
    with_extra(srv, alice="expire=never", bob="expire=30", carol="expire=2")
    srv.start()
    assert policy_tags(srv.connect()) == ["EXPIRE 5 USER"]
    assert policy_tags(srv.login("alice")) == ["EXPIRE NEVER"]
    assert policy_tags(srv.login("bob")) == ["EXPIRE 30"]
    assert policy_tags(srv.login("carol")) == ["EXPIRE 5"]
    assert policy_tags(srv.login("dave")) == ["EXPIRE 5"]


def test_expire_zero_for_one_user_under_global_never(gannet):
    srv = gannet(start=False)
    with_extra(srv, alice="expire=0")
    srv.start()
    assert policy_tags(srv.connect()) == []
    assert policy_tags(srv.login("alice")) == ["EXPIRE 0"]
    assert policy_tags(srv.login("bob")) == ["EXPIRE NEVER"]


def test_bad_policy_values_in_user_file_refuse_that_user(gannet):
    """A malformed expire= is an administrator's error: [SYS/TEMP] and file:line in the log,
    never a guess."""
    srv = gannet(start=False)
    with_extra(srv, alice="expire=soon")
    srv.start()
    c = srv.connect()
    c.cmd("USER alice")
    r = c.cmd("PASS " + srv.password("alice"))
    assert r.startswith(b"-ERR [SYS/TEMP]"), r
    assert "expire=: expected never or a whole number from 0 to 36500" in srv.log_text()


def test_config_rejects_bad_values(gannet):
    srv = gannet(start=False)
    for key, value, msg in (("expire_days", "-1", "expected never or a whole number"),
                            ("expire_days", "36501", "from 0 to 36500"),
                            ("login_delay", "604801", "from 0 to 604800"),
                            ("test_update_delay_ms", "1001", "from 0 to 1000")):
        srv.settings[key] = value
        srv.write_config()
        r = subprocess.run([g.GANNETD, "-n", "-c", srv.conf_path], capture_output=True,
                           timeout=g.t(20), env=g.run_env(), stdin=subprocess.DEVNULL)
        assert r.returncode != 0 and msg.encode() in r.stdout + r.stderr, (key, r)
        del srv.settings[key]


# ---- EXPIRE at UPDATE ----

def test_s043_expire_zero_deletes_retrieved_not_topped(gannet):
    srv = gannet(expire_days="0")
    md = srv.maildir("alice")
    bodies = [g.header("m%d" % i) + b"text\r\n" for i in range(3)]
    for b in bodies:
        md.deliver(b)
    c = srv.login("alice")
    c.retr(1)
    st, _ = c.cmd_multi("TOP 2 0")
    assert st.startswith(b"+OK")
    assert c.quit() == b"+OK Bye, 0 messages deleted, 1 expired\r\n"
    assert md.contents() == sorted(bodies[1:])
    # Nothing retrieved this time: nothing expires.
    c = srv.login("alice")
    assert c.cmd("STAT") == b"+OK 2 %d\r\n" % sum(len(g.to_wire(b)) for b in bodies[1:])
    assert c.quit() == b"+OK Bye, 0 messages deleted\r\n"
    assert md.contents() == sorted(bodies[1:])


def test_expire_zero_without_quit_deletes_nothing(gannet):
    """UPDATE only runs on QUIT (RFC 1939 §6): a dropped session expires nothing."""
    srv = gannet(expire_days="0")
    md = srv.maildir("alice")
    md.deliver(g.header("one") + b"x\r\n")
    c = srv.login("alice")
    c.retr(1)
    c.close()
    assert srv.stat("alice")[0] == 1


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def age_index(root, shift):
    """Move every first-retrieved time of ROOT/gannet.index SHIFT seconds into the past, through
    the documented format (lib/mindex.h), checksum included. Returns {name: first_retrieved}."""
    path = os.path.join(root, "gannet.index")
    with open(path, "rb") as f:
        data = bytearray(f.read())
    assert data[:8] == b"GANNETIX"
    version, _, count = struct.unpack_from("<III", data, 8)
    off, out = (24 if version == 1 else 72), {}  # version 2 adds 48 octets of directory stamps
    for _ in range(count):
        fr = struct.unpack_from("<q", data, off + 24)[0]
        if fr:
            struct.pack_into("<q", data, off + 24, fr - shift)
        nlen, ulen, flags = struct.unpack_from("<HBB", data, off + 32)
        name = bytes(data[off + 36:off + 36 + nlen]).decode()
        out[name] = fr - shift if fr else 0
        off += 36 + nlen + (0 if flags & 2 else ulen)
    assert off == len(data)
    struct.pack_into("<I", data, 20, crc32c(bytes(data[24:]), crc32c(bytes(data[:20]))))
    with open(path + ".new", "wb") as f:
        f.write(data)
    os.rename(path + ".new", path)
    return out


def test_expire_days_at_update_counts_from_first_retrieval(gannet):
    srv = gannet(expire_days="2")
    md = srv.maildir("alice")
    bodies = [g.header("m%d" % i) + b"text\r\n" for i in range(3)]
    for b in bodies:
        md.deliver(b)
    c = srv.login("alice")
    c.retr(1)
    c.retr(2)
    assert c.quit() == b"+OK Bye, 0 messages deleted\r\n"  # retrieved just now: kept
    assert len(md.files()) == 3
    times = age_index(md.root, 3 * DAY)  # message 1 and 2 retrieved three days ago
    assert sorted(v != 0 for v in times.values()) == [False, True, True]
    c = srv.login("alice")
    c.retr(2)  # a later RETR does not restart the clock
    assert c.quit() == b"+OK Bye, 0 messages deleted, 2 expired\r\n"
    assert md.contents() == [bodies[2]]
    assert "event=expire user=alice expired=2 expire_days=2" in srv.log_text()


def test_expire_one_day_short_keeps(gannet):
    srv = gannet(expire_days="2")
    md = srv.maildir("alice")
    md.deliver(g.header("m") + b"text\r\n")
    c = srv.login("alice")
    c.retr(1)
    c.quit()
    age_index(md.root, 1 * DAY)
    c = srv.login("alice")
    assert c.quit() == b"+OK Bye, 0 messages deleted\r\n"
    assert len(md.files()) == 1


# ---- gannetctl expire ----

def test_gannetctl_expire(gannet):
    srv = gannet(users=("alice", "bob", "carol"), start=False, expire_days="2")
    with_extra(srv, carol="expire=never")
    srv.start()
    bodies = {}
    for u in ("alice", "bob", "carol"):
        md = srv.maildir(u)
        bodies[u] = [md.deliver(g.header("%s %d" % (u, i)) + b"x\r\n") for i in range(3)]
        c = srv.login(u)
        c.retr(1)
        c.retr(3)
        c.quit()
    now = int(time.time())
    # One day on: nothing is old enough.
    r = ctl(srv, "expire", "alice", "--now", str(now + DAY))
    assert r.returncode == 0, r
    assert r.stdout == b"alice: 0 of 3 messages expired (expire 2 days)\n"
    assert len(srv.maildir("alice").files()) == 3
    # Three days on, all users, while bob is logged in.
    held = srv.login("bob")
    r = ctl(srv, "expire", "--now", str(now + 3 * DAY))
    assert r.returncode == 0, r
    assert r.stdout.decode().splitlines() == [
        "alice: 2 of 3 messages expired (expire 2 days)",
        "bob: maildrop in use by a POP3 session, skipped",
        "carol: expire never, nothing to do",
        "2 maildrops done, 1 skipped (in use), 0 failed"]
    assert sorted(srv.maildir("alice").files()) == [bodies["alice"][1]]
    assert len(srv.maildir("bob").files()) == 3
    assert len(srv.maildir("carol").files()) == 3
    assert held.cmd("STAT").startswith(b"+OK 3 ")
    held.quit()
    r = ctl(srv, "expire", "bob", "--now", str(now + 3 * DAY))
    assert r.stdout == b"bob: 2 of 3 messages expired (expire 2 days)\n", r
    assert not os.path.exists(os.path.join(srv.maildir("bob").root, "gannet.update"))
    # The index gannetd keeps still agrees: a login sees the one message left, same UIDL.
    c = srv.login("bob")
    st, body = c.cmd_multi("UIDL")
    c.quit()
    assert g.multiline_lines(body) == [b"1 " + g.uidl_for_name(bodies["bob"][1]).encode()]


def test_gannetctl_expire_usage(gannet):
    srv = gannet(expire_days="2")
    r = ctl(srv, "expire", "nosuchuser")
    assert r.returncode == 1 and b"unknown user" in r.stderr, r
    r = ctl(srv, "expire", "alice", "--now", "yesterday")
    assert r.returncode == 2 and b"--now" in r.stderr, r


# ---- LOGIN-DELAY ----

def test_s036_s037_login_delay_after_correct_password_only(gannet):
    srv = gannet(login_delay="60", auth_failure_delay="0")
    md = srv.maildir("alice")
    md.deliver(g.header("one") + b"x\r\n")
    c = srv.login("alice")
    assert c.quit().startswith(b"+OK")
    stamp_path = os.path.join(md.root, "gannet.login")
    with open(stamp_path) as f:
        stamp = f.read()
    assert abs(int(stamp) - time.time()) < 30
    c = srv.connect()
    r = c.cmd("USER alice")
    assert r.startswith(b"+OK") and b"[" not in r, r  # S-036: no response code at USER
    assert c.cmd("PASS wrong-password").startswith(b"-ERR [AUTH]")
    c.close()
    c = srv.connect()
    assert c.cmd("USER alice").startswith(b"+OK")
    r = c.cmd("PASS " + srv.password("alice"))
    assert r.startswith(b"-ERR [LOGIN-DELAY] "), r
    c.wait_closed()
    with open(stamp_path) as f:
        assert f.read() == stamp  # the refused login changed nothing
    assert len(md.files()) == 1
    # Once the delay has passed the login works (the stored time is moved back 61 s).
    with open(stamp_path, "w") as f:
        f.write("%d\n" % (int(stamp) - 61))
    c = srv.login("alice")
    assert c.cmd("STAT").startswith(b"+OK 1 ")
    c.quit()


def test_login_delay_zero_for_one_user(gannet):
    srv = gannet(start=False, login_delay="60")
    with_extra(srv, bob="login_delay=0")
    srv.start()
    for _ in range(2):
        srv.login("bob").quit()
    srv.login("alice").quit()
    c = srv.connect()
    c.cmd("USER alice")
    assert c.cmd("PASS " + srv.password("alice")).startswith(b"-ERR [LOGIN-DELAY]")
