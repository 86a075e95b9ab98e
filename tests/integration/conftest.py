"""Fixtures for the Gannet integration suite (see gannettest.py for the helpers).

Environment: GANNET_BUILD (dir holding gannetd and gannetctl, default <repo>/build), GANNET_ASAN=1
(ASan build: timeouts x3, sanitizer reports fail the test), GANNET_FIGURES (file that receives the
timing figures of the load tests).
"""

import os
import resource
import subprocess

import pytest

import gannettest as g


def _raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


_raise_nofile()  # inherited by gannetd too: the load tests hold 1000+ connections


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: load, big-message and real-client tests (bounded)")
    config.addinivalue_line("markers", "timing: measures wall-clock delays; skipped in the ASan "
                            "pass of make test, where it adds minutes and no memory coverage")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory):
    """Self-signed RSA-2048 certificate for CN=localhost, SAN DNS:localhost, IP:127.0.0.1."""
    d = tmp_path_factory.mktemp("tls")
    cert, key = str(d / "cert.pem"), str(d / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "7", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.fixture
def isolation():
    """Isolation mode of the default server; tests parametrize it to run in both modes."""
    return "shared"


def _check_binaries():
    if not os.access(g.GANNETD, os.X_OK):
        pytest.fail("gannetd is not built at %s (run make, or set GANNET_BUILD)" % g.GANNETD)


@pytest.fixture
def gannet(tmp_path, tls_cert, request):
    """Factory: gannet(users=("alice", "bob"), tls=True, start=True, **settings) -> GannetServer.

    Settings are config keys (a value of None drops a default, "" writes `key =`). Every server is
    stopped by its own PID at teardown; the test fails if gannetd crashed, left children behind,
    logged a sanitizer report or logged any password used in the test."""
    _check_binaries()
    servers = []

    def make(users=("alice", "bob"), tls=True, start=True, **settings):
        s = g.GannetServer(tmp_path / ("srv%d" % len(servers)), tls_cert if tls else None, settings)
        servers.append(s)
        for u in users:
            s.add_user(u, write=False)
        s.write_users()
        if start:
            s.start()
        return s

    yield make
    problems = []
    for s in servers:
        problems += ["%s: %s" % (os.path.basename(s.base), p) for p in s.finish()]
    failed = getattr(request.node, "rep_call", None)
    if problems or (failed is not None and failed.failed):
        for s in servers:
            print("----- log of %s (%s) -----\n%s" % (os.path.basename(s.base), s.log_path,
                                                     s.log_tail(80)))
    if problems:
        pytest.fail("server problems:\n  " + "\n  ".join(problems), pytrace=False)


@pytest.fixture
def server(gannet, isolation):
    """A running gannetd with users alice and bob (empty maildrops)."""
    return gannet(isolation=isolation)


@pytest.fixture
def ctl_env():
    _check_binaries()
    if not os.access(g.GANNETCTL, os.X_OK):
        pytest.fail("gannetctl is not built at %s" % g.GANNETCTL)
