"""A DNS server that never answers cannot hang gannet: name resolution has a deadline (the
account timeout, at most 30 s). The test runs gannet in a private mount namespace whose
/etc/resolv.conf names a silent UDP listener on loopback."""

import socket
import subprocess
import threading
import time

import pytest

import clienttest as ct
from clienttest import g

SILENT_NS = "127.0.0.9"


@pytest.fixture
def silent_dns():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((SILENT_NS, 53))
    except OSError as e:
        s.close()
        pytest.skip("cannot bind %s:53 for the silent DNS server: %s" % (SILENT_NS, e))
    queries = []
    stop = threading.Event()

    def serve():
        s.settimeout(0.2)
        while not stop.is_set():
            try:
                data, _ = s.recvfrom(4096)
            except OSError:
                continue
            queries.append(data)  # and never answer

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    yield queries
    stop.set()
    th.join(5)
    s.close()


def test_hanging_dns_times_out(client, silent_dns, tmp_path):
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("no mount namespaces here (unshare -m fails)")
    resolv = tmp_path / "resolv.conf"
    # glibc would wait 30 s x 3 tries on its own
    resolv.write_text("nameserver %s\noptions timeout:30 attempts:3\n" % SILENT_NS)
    client.write_config({"acct": {"host": "mail.hang.test", "user": "u", "password": "p",
                                  "timeout": 3}})
    cmd = ["unshare", "-m", "sh", "-c",
           'mount --bind "$1" /etc/resolv.conf && exec "$2" fetch', "sh", str(resolv),
           ct.GANNET]
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, timeout=ct.t(60), env=client.env(),
                       cwd=client.base)
    took = time.monotonic() - t0
    err = p.stderr.decode("utf-8", "replace")
    for m in g.SAN_MARKERS:
        assert m not in err, err
    assert p.returncode == ct.EX_TEMPFAIL, err
    assert "cannot find the address of mail.hang.test: the DNS server did not answer " \
           "within 3 s" in err
    assert silent_dns, "gannet never asked the silent DNS server"
    assert 2.5 < took < ct.t(8), "took %.1f s" % took
