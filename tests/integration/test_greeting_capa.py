"""Greeting and CAPA: S-007, S-008, S-015, S-018, S-038..S-040, S-046, S-047, S-083."""

import re

import pytest

import gannettest as g

BASE = ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"]


def expected_capa(user, stls, tls=False, post=False):
    """The tags in order. SASL (S-063, S-113): -PLUS only under TLS; PLAIN and LOGIN exactly
    when USER is offered (RFC 2595 §2.3, S-103). POST: after login, where the default policy is
    announced as EXPIRE NEVER (S-042; before login it is left out under expire_days = never, see
    test_policies.py)."""
    sasl = ["SCRAM-SHA-256-PLUS"] if tls else []
    sasl += ["SCRAM-SHA-256"] + (["SCRAM-SHA-1-PLUS"] if tls else []) + ["SCRAM-SHA-1"]
    sasl += ["PLAIN", "LOGIN"] if user else []
    return BASE + (["USER"] if user else []) + ["SASL " + " ".join(sasl)] + \
        (["STLS"] if stls else []) + (["EXPIRE NEVER"] if post else []) + \
        ["UTF8 USER", "LANG", "IMPLEMENTATION Gannet"]


def check_capa_bytes(c):
    """Send CAPA and check the framing byte by byte (S-002, S-008, S-047); return the tags."""
    c.send(b"CAPA\r\n")
    status = c.readline()
    assert re.match(rb"^\+OK[^\r\n]*\r\n$", status), status
    body = c.read_multi()
    lines = body.split(b"\r\n")
    assert lines[-1] == b"" and lines[-2] == b".", body
    for ln in lines[:-2]:
        assert len(ln) + 2 <= 512, ln            # S-008
        assert not ln.startswith(b"."), ln       # S-047: no capability line starts with '.'
        assert b"\n" not in ln and b"\r" not in ln, ln
    tags = [ln.decode() for ln in lines[:-2]]
    for tag in tags:
        assert "." not in tag.split(" ")[0], tag  # S-047: a tag never contains '.'
    return tags


@pytest.mark.parametrize("isolation", ["shared", "per-connection"])
def test_s015_s018_greeting_is_one_positive_line_without_apop_stamp(server):
    """S-015: one +OK line right after connect; S-018: no '<' (APOP is off); S-007: <= 512."""
    c = server.connect()
    assert re.match(rb"^\+OK( [^\r\n]*)?\r\n$", c.greeting), c.greeting
    assert b"<" not in c.greeting
    assert len(c.greeting) <= 512
    assert c.read_available(0.3) == b""   # nothing but the one line


def test_s015_s085_greeting_on_implicit_tls_port(server):
    """S-015/S-085: on listen_tls the greeting comes inside TLS."""
    c = server.connect(tls=True)
    assert re.match(rb"^\+OK( [^\r\n]*)?\r\n$", c.greeting), c.greeting
    assert b"<" not in c.greeting


def test_s007_greeting_fits_512_with_long_hostname(gannet):
    """S-007: the longest hostname the server accepts (a 253-character DNS name, or else the
    server's own cap, which gannetd -n reports) still gives a greeting of at most 512 octets."""
    import subprocess
    srv = gannet(start=False)
    for n in (253, 255, 200, 127, 100, 63):
        host = ".".join(["h" * 63] * 5)[:n].rstrip(".")
        srv.settings["hostname"] = host
        srv.write_config()
        r = subprocess.run([g.GANNETD, "-n", "-c", srv.conf_path], capture_output=True,
                           timeout=g.t(20), env=g.run_env(), stdin=subprocess.DEVNULL)
        if r.returncode == 0:
            break
    else:
        pytest.fail("no hostname of 63 characters or more is accepted")
    srv.start()
    c = srv.connect()
    assert c.greeting.startswith(b"+OK") and c.greeting.endswith(b"\r\n")
    assert len(c.greeting) <= 512, len(c.greeting)
    assert b"<" not in c.greeting


@pytest.mark.parametrize("isolation", ["shared", "per-connection"])
def test_s038_s046_capa_authorization_plain_trusted(server):
    """S-038/S-046: exact CAPA on the plain listener from a trusted network, before TLS."""
    c = server.connect()
    assert check_capa_bytes(c) == expected_capa(user=True, stls=True)


@pytest.mark.parametrize("isolation", ["shared", "per-connection"])
def test_s039_s040_capa_transaction_drops_only_stls(server):
    """S-039/S-040: CAPA works after login and lists the same tags minus STLS."""
    c = server.login("alice")
    assert check_capa_bytes(c) == expected_capa(user=True, stls=False, post=True)
    assert c.cmd("NOOP").startswith(b"+OK")


def test_s039_capa_transaction_over_tls(server):
    c = server.login("alice", tls=True)
    assert check_capa_bytes(c) == expected_capa(user=True, stls=False, tls=True, post=True)


def test_capa_on_implicit_tls_port_has_user_no_stls(server):
    """S-080/S-083: inside TLS, STLS is not offered; USER is (TLS is active)."""
    c = server.connect(tls=True)
    assert check_capa_bytes(c) == expected_capa(user=True, stls=False, tls=True)


def test_capa_without_tls_cert_has_no_stls(gannet):
    """STLS is listed only when tls_cert is configured."""
    srv = gannet(tls=False)
    c = srv.connect()
    assert check_capa_bytes(c) == expected_capa(user=True, stls=False)
    assert c.cmd("STLS").startswith(b"-ERR")


def test_s032_s083_capa_untrusted_before_and_after_stls(gannet):
    """S-032: with no trusted network, CAPA before STLS has no USER; after STLS USER appears and
    STLS is gone (S-083)."""
    srv = gannet(trusted_networks="")
    c = srv.connect()
    assert check_capa_bytes(c) == expected_capa(user=False, stls=True)
    r = c.cmd("STLS")
    assert r.startswith(b"+OK"), r
    c.starttls(srv.tls_context())
    assert check_capa_bytes(c) == expected_capa(user=True, stls=False, tls=True)
    c.login("alice", srv.password("alice"))
    assert check_capa_bytes(c) == expected_capa(user=True, stls=False, tls=True, post=True)


def test_capa_untrusted_but_plaintext_allowed(gannet):
    """disable_plaintext_auth = no: USER is offered on the plain listener even when untrusted."""
    srv = gannet(trusted_networks="", disable_plaintext_auth="no")
    c = srv.connect()
    assert check_capa_bytes(c) == expected_capa(user=True, stls=True)
    c.login("alice", srv.password("alice"))


def test_s047_capa_lowercase_and_repeated(server):
    """S-003 on CAPA: case-insensitive, and repeatable with identical output."""
    c = server.connect()
    a = check_capa_bytes(c)
    c.send(b"capa\r\n")
    assert c.readline().startswith(b"+OK")
    assert [ln.decode() for ln in g.multiline_lines(c.read_multi())] == a


def test_capa_with_argument_is_error(server):
    c = server.connect()
    assert c.cmd("CAPA x").startswith(b"-ERR")
    assert check_capa_bytes(c) == expected_capa(user=True, stls=True)


def test_several_listeners(gannet):
    """listen takes several space-separated addresses; each one serves POP3 with STLS."""
    srv = gannet(start=False)
    srv.extra_ports.append(g.free_port())
    srv.start()
    for port in srv.ports()[:2]:
        c = srv.connect(port=port)
        assert check_capa_bytes(c) == expected_capa(user=True, stls=True)
        c.login("alice", srv.password("alice"))
        assert c.quit().startswith(b"+OK")
