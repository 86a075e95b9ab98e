"""The auth process's verified-credential cache (auth_cache_ttl, auth_cache_size): a second login
with the same password skips the slow hash, and nothing else changes: a wrong password still
fails and is still counted, a password change in the user file takes effect at once, entries
expire after the TTL and die with a reload, TOTP users and app passwords never use it.

Every cache hit is logged at debug level as `event=auth_cache_hit` by the auth process before it
answers, so counting those lines after each reply is exact."""

import os
import time

import pytest

import gannettest as g
from test_account_security import ctl, enable_totp

PW = "Cache-Horse-42"
FAILED = b"-ERR [AUTH] Authentication failed\r\n"


def login(srv, user, password):
    """USER/PASS on a fresh connection; the PASS reply."""
    c = srv.connect()
    assert c.cmd("USER " + user) == b"+OK\r\n"
    r = c.cmd("PASS " + password)
    if r.startswith(b"+OK"):
        assert c.quit().startswith(b"+OK")
    else:
        c.close()
    return r


def hits(srv, user="alice"):
    return srv.log_text().count("event=auth_cache_hit user=%s" % user)


def failures(srv, user="alice"):
    return srv.log_text().count("event=auth_failed user=%s method=PASS reason=\"wrong_password\""
                                % user)


@pytest.fixture
def srv(gannet):
    s = gannet(users=(), start=False, auth_failure_delay="0")
    s.add_user("alice", password=PW, scheme="SHA512-CRYPT")
    s.add_user("bob", password="Bob-pass-99", scheme="SHA512-CRYPT")
    s.start()
    return s


def test_second_login_hits_and_wrong_password_still_fails(srv):
    assert login(srv, "alice", PW).startswith(b"+OK")
    assert hits(srv) == 0  # the first login verified the hash
    assert login(srv, "alice", PW).startswith(b"+OK")
    assert hits(srv) == 1
    # A cached credential never lets another password in, nor another user's.
    assert login(srv, "alice", PW + "x") == FAILED
    assert login(srv, "alice", PW[:-1]) == FAILED
    assert login(srv, "bob", PW) == FAILED
    assert hits(srv) == 1
    assert failures(srv) == 2
    assert login(srv, "alice", PW).startswith(b"+OK")
    assert hits(srv) == 2
    # bob's own first login verifies, his second hits.
    assert login(srv, "bob", "Bob-pass-99").startswith(b"+OK")
    assert login(srv, "bob", "Bob-pass-99").startswith(b"+OK")
    assert hits(srv, "bob") == 1


def test_sasl_plain_uses_the_same_cache(srv):
    import base64

    assert login(srv, "alice", PW).startswith(b"+OK")
    c = srv.connect()
    r = c.cmd("AUTH PLAIN " + base64.b64encode(b"\0alice\0" + PW.encode()).decode())
    assert r.startswith(b"+OK"), r
    assert c.quit().startswith(b"+OK")
    assert hits(srv) == 1


def test_password_change_takes_effect_at_once(srv):
    assert login(srv, "alice", PW).startswith(b"+OK")
    assert login(srv, "alice", PW).startswith(b"+OK")
    assert hits(srv) == 1
    st = os.stat(srv.userdb)
    new = "Changed-Horse-43"
    srv.add_user("alice", password=new, scheme="SHA512-CRYPT", make_maildir=False)
    # Same length of hash, and the old mtime put back: the cache must not be fooled by stat
    # data a tool can restore (the stored hash is part of every entry, and ctime moves).
    assert os.stat(srv.userdb).st_size == st.st_size
    os.utime(srv.userdb, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert login(srv, "alice", PW) == FAILED
    assert hits(srv) == 1
    assert login(srv, "alice", new).startswith(b"+OK")
    assert hits(srv) == 1
    assert login(srv, "alice", new).startswith(b"+OK")
    assert hits(srv) == 2


def test_unrelated_change_of_the_user_file_drops_every_entry(srv):
    assert login(srv, "alice", PW).startswith(b"+OK")
    assert login(srv, "alice", PW).startswith(b"+OK")
    assert hits(srv) == 1
    srv.add_user("carol", scheme="SHA512-CRYPT")  # alice's line is unchanged
    assert login(srv, "alice", PW).startswith(b"+OK")
    assert hits(srv) == 1  # verified again under the new file
    assert "event=auth_cache_flush reason=userdb_changed entries=1" in srv.log_text()
    assert login(srv, "alice", PW).startswith(b"+OK")
    assert hits(srv) == 2


def test_entries_expire_after_the_ttl(gannet):
    srv = gannet(users=(), start=False, auth_cache_ttl="1")
    srv.add_user("alice", password=PW, scheme="SHA512-CRYPT")
    srv.start()
    assert login(srv, "alice", PW).startswith(b"+OK")
    assert login(srv, "alice", PW).startswith(b"+OK")
    assert hits(srv) == 1
    time.sleep(1.2)  # the TTL itself is what is tested: nothing to wait on but the clock
    assert login(srv, "alice", PW).startswith(b"+OK")
    assert hits(srv) == 1
    assert login(srv, "alice", PW).startswith(b"+OK")
    assert hits(srv) == 2


@pytest.mark.parametrize("setting", [{"auth_cache_ttl": "0"}, {"auth_cache_size": "0"}],
                         ids=["ttl0", "size0"])
def test_zero_turns_it_off(gannet, setting):
    srv = gannet(users=(), start=False, **setting)
    srv.add_user("alice", password=PW, scheme="SHA512-CRYPT")
    srv.start()
    for _ in range(3):
        assert login(srv, "alice", PW).startswith(b"+OK")
    assert hits(srv) == 0


def test_size_one_keeps_the_latest(gannet):
    srv = gannet(users=(), start=False, auth_cache_size="1")
    srv.add_user("alice", password=PW, scheme="SHA512-CRYPT")
    srv.add_user("bob", password="Bob-pass-99", scheme="SHA512-CRYPT")
    srv.start()
    assert login(srv, "alice", PW).startswith(b"+OK")
    assert login(srv, "bob", "Bob-pass-99").startswith(b"+OK")
    # One entry in all (a set of AUTH_CACHE_WAYS slots holds it): alice's may or may not have
    # shared bob's set, but bob's, the latest, must be there.
    assert login(srv, "bob", "Bob-pass-99").startswith(b"+OK")
    assert hits(srv, "bob") == 1


def test_reload_starts_with_an_empty_cache(srv):
    assert login(srv, "alice", PW).startswith(b"+OK")
    assert login(srv, "alice", PW).startswith(b"+OK")
    assert hits(srv) == 1
    srv.reload()
    deadline = time.monotonic() + g.t(10)
    while "event=reloaded generation=2" not in srv.log_text():
        assert time.monotonic() < deadline, srv.log_tail()
        time.sleep(0.05)
    assert login(srv, "alice", PW).startswith(b"+OK")
    assert hits(srv) == 1  # the new generation's auth process verified the hash
    assert login(srv, "alice", PW).startswith(b"+OK")
    assert hits(srv) == 2


def test_failures_still_reach_the_brute_force_defence(gannet):
    """With the correct password cached, wrong ones are still counted: the address is blocked
    after auth_ip_max_failures, and then even the cached password is refused."""
    srv = gannet(users=(), start=False, trusted_networks="", disable_plaintext_auth="no",
                 auth_failure_delay="0", auth_ip_max_failures="3")
    srv.add_user("alice", password=PW, scheme="SHA512-CRYPT")
    srv.start()
    assert login(srv, "alice", PW).startswith(b"+OK")
    assert login(srv, "alice", PW).startswith(b"+OK")
    assert hits(srv) == 1
    for i in range(3):
        assert login(srv, "alice", "wrong-%d" % i) == FAILED
    assert failures(srv) == 3
    r = login(srv, "alice", PW)
    assert r.startswith(b"-ERR"), r
    assert "event=auth_blocked" in srv.log_text()
    assert hits(srv) == 1


def test_app_passwords_are_never_cached(srv):
    apppw = ctl(srv, "app-password", "add", "alice", "--name", "phone").splitlines()[0]
    for _ in range(2):
        assert login(srv, "alice", apppw).startswith(b"+OK")
    assert srv.log_text().count("event=auth_ok user=alice method=PASS+app-password=phone") == 2
    assert hits(srv) == 0
    ctl(srv, "app-password", "revoke", "alice", "phone")
    assert login(srv, "alice", apppw) == FAILED


def test_totp_user_never_uses_the_cache(srv):
    assert login(srv, "alice", PW).startswith(b"+OK")
    assert login(srv, "alice", PW).startswith(b"+OK")
    assert hits(srv) == 1
    enable_totp(srv, "alice")
    # The cached password alone no longer opens the account: TOTP is checked first.
    assert login(srv, "alice", PW) == FAILED
    assert "reason=\"totp_required\"" in srv.log_text()
    assert hits(srv) == 1
