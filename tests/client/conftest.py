"""Fixtures for the gannet fetch-client suite (helpers in clienttest.py and hostile.py)."""

import os

import pytest

import clienttest as ct
from clienttest import g


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: the crash loop and other long tests (bounded)")


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    return ct.make_certs(tmp_path_factory.mktemp("certs"))


def _need(path, what):
    if not os.access(path, os.X_OK):
        pytest.fail("%s is not built at %s (run make, or set GANNET_BUILD / GANNETD)"
                    % (what, path))


@pytest.fixture
def client(tmp_path):
    _need(ct.GANNET, "gannet")
    return ct.Client(tmp_path / "client")


@pytest.fixture
def gannetd(tmp_path, certs):
    """Factory: gannetd(users=("alice",), **settings) -> a running GannetServer whose TLS
    certificate is certs['good'] (signed by certs['ca'])."""
    _need(g.GANNETD, "gannetd")
    servers = []

    def make(users=("alice",), **settings):
        s = g.GannetServer(tmp_path / ("srv%d" % len(servers)), certs["good"], settings)
        servers.append(s)
        for u in users:
            # SCRAM verifiers too: auth = auto picks SCRAM-SHA-256-PLUS, as a real user would get
            s.add_user(u, write=False, scram=True)
        s.write_users()
        s.start()
        return s

    yield make
    problems = []
    for s in servers:
        problems += s.finish()
    if problems:
        for s in servers:
            print("----- gannetd log -----\n" + s.log_tail(60))
        pytest.fail("gannetd problems: %s" % problems, pytrace=False)


# One copy, in clienttest (importable when tests/client and tests/integration run together).
account_for = ct.account_for
