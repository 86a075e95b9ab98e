#!/usr/bin/python3
"""Poll benchmark (not part of the test suite): a kept mailbox of N messages on the real gannetd
with K new ones; time gannet's poll next to mpop's on the same mailbox.

    GANNET_BUILD=build GANNETD=build/gannetd tests/client/bench_poll.py [N] [K]

The client Maildirs live on /dev/shm so that the first, full download is fast for both; the poll
that is timed writes only the K new messages."""

import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clienttest as ct  # noqa: E402
from clienttest import g  # noqa: E402


def fill(md, n, start):
    new = os.path.join(md.root, "new")
    for i in range(start, start + n):
        name = "%d.M%dP1Q%d.bench" % (1700000000 + i, i, i)
        with open(os.path.join(new, name), "wb") as f:
            f.write(g.header("bench-%d" % i) + b"body of message %d\n" % i)


def timed(args, env=None):
    t0 = time.monotonic()
    p = subprocess.run(args, capture_output=True, env=env, timeout=3600)
    dt = time.monotonic() - t0
    if p.returncode != 0:
        raise SystemExit("%s failed (%d): %s" % (args[0], p.returncode, p.stderr[-2000:]))
    return dt


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
    k = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    base = tempfile.mkdtemp(prefix="gannet-bench-")
    shm = tempfile.mkdtemp(prefix="gannet-bench-", dir="/dev/shm")
    certs = ct.make_certs(os.path.join(base, "certs"))
    srv = g.GannetServer(os.path.join(base, "srv"), certs["good"], {"log_level": "warning"})
    pw = srv.add_user("alice", scram=True)
    srv.start()
    try:
        md = srv.maildir("alice")
        fill(md, n, 0)
        client = ct.Client(os.path.join(shm, "gannet"))
        client.write_config({"b": {"host": "localhost", "port": srv.tls_port, "user": "alice",
                                   "password": pw, "ca_file": certs["ca"],
                                   "maildir": os.path.join(shm, "gannet-md")}})
        mp_conf = os.path.join(shm, "mpoprc")
        with open(mp_conf, "w") as f:
            f.write("account b\nhost localhost\nport %d\ntls on\ntls_starttls off\n"
                    "tls_trust_file %s\nuser alice\npassword %s\nkeep on\n"
                    "uidls_file %s/mpop.uidls\ndelivery maildir %s/mpop-md\n"
                    % (srv.tls_port, certs["ca"], pw, shm, shm))
        os.chmod(mp_conf, 0o600)
        for d in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(shm, "mpop-md", d))
        gannet = [ct.GANNET, "-c", client.config, "-q", "fetch"]
        mpop = ["mpop", "-C", mp_conf, "-q", "b"]
        env = client.env()
        first_g = timed(gannet, env)
        first_m = timed(mpop)
        fill(md, k, n)
        # mpop first this time: the one that goes first may meet a colder server cache.
        poll_m = timed(mpop)
        poll_g = timed(gannet, env)
        idle = {"gannet": [], "mpop": []}
        for _ in range(5):
            idle["gannet"].append(timed(gannet, env))
            idle["mpop"].append(timed(mpop))
        idle_g = sorted(idle["gannet"])[2]
        idle_m = sorted(idle["mpop"])[2]
        got_g = len(os.listdir(os.path.join(shm, "gannet-md", "new")))
        got_m = sum(len(os.listdir(os.path.join(shm, "mpop-md", d))) for d in ("new", "cur"))
        assert got_g == n + k and got_m == n + k, (got_g, got_m)
        print("kept mailbox of %d messages, %d new (gannetd over TLS, Maildir on tmpfs)" % (n, k))
        print("%-8s first download %7.2f s   poll with %d new %6.3f s   poll, none new (median of 5) %6.3f s"
              % ("gannet", first_g, k, poll_g, idle_g))
        print("%-8s first download %7.2f s   poll with %d new %6.3f s   poll, none new (median of 5) %6.3f s"
              % ("mpop", first_m, k, poll_m, idle_m))
    finally:
        srv.finish()
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(shm, ignore_errors=True)


if __name__ == "__main__":
    main()
