#!/usr/bin/python3
"""Poll benchmark (not part of the test suite): a kept mailbox of N messages with K new ones;
the time `gannet` and `mpop` take to poll it, on the same server and the same mailbox.

    GANNET_BUILD=build/X tests/client/bench_poll.py [--messages N] [--new K] [--reps R]
        [--servers gannetd,dovecot] [--corpus DIR] [--figures FILE]

The server Maildir is made of hard links to the messages of an existing corpus (default: the one
bench/run.sh generates, /var/tmp/gannet-bench/corpus/big/Maildir, 100,000 messages; nothing
there is written, renamed or chowned) or, without one, of generated small messages. Both
clients first download everything (timed: "first download"); then, R times, K new messages are
delivered and each client polls once (the order alternates between repetitions). Reported per
client: median of R and min-max of the wall time, and the median CPU time (user+sys) of the
client process, which a busy machine disturbs less. The client Maildirs live on /dev/shm so that
the first download is not a disk benchmark; each timed poll writes only the K new messages.
Processes are stopped by PID; the work directories are removed at the end."""

import argparse
import os
import pwd
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clienttest as ct  # noqa: E402
from clienttest import g  # noqa: E402
import dovecotsrv  # noqa: E402  (tests/integration is on sys.path through clienttest)

CORPUS = "/var/tmp/gannet-bench/corpus/big/Maildir"
# A poll of a 100k mailbox takes seconds; a stuck client or server must not hang the run.
RUN_TIMEOUT = 3600


def fill(root, n, start, owner=None):
    """N generated small messages in ROOT/new, numbered from START."""
    new = os.path.join(root, "new")
    for i in range(start, start + n):
        name = "%d.M%dP1Q%d.bench" % (1700000000 + i, i, i)
        p = os.path.join(new, name)
        with open(p, "wb") as f:
            f.write(g.header("bench-%d" % i) + b"body of message %d\n" % i)
        if owner is not None:
            os.lchown(p, owner.pw_uid, owner.pw_gid)


def populate(root, n, corpus, owner=None):
    """N messages in ROOT: hard links to the first N of CORPUS/cur (sorted), generated ones for
    the rest. Returns how many are links."""
    linked = 0
    if corpus and os.path.isdir(os.path.join(corpus, "cur")):
        src = os.path.join(corpus, "cur")
        for name in sorted(os.listdir(src))[:n]:
            try:
                os.link(os.path.join(src, name), os.path.join(root, "cur", name))
                linked += 1
            except FileNotFoundError:  # renamed by a concurrent reader of the corpus
                pass
    fill(root, n - linked, 0, owner)
    return linked


def timed(args, env=None):
    """Run ARGS to completion: (wall seconds, user+sys CPU seconds of the process tree)."""
    t0 = time.monotonic()
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        out, err = p.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise SystemExit("%s timed out" % args[0])
    wall = time.monotonic() - t0
    if p.returncode != 0:
        raise SystemExit("%s failed (%d): %s" % (args[0], p.returncode, err[-2000:]))
    return wall


class Clients:
    """gannet and mpop, each with its own state and Maildir under SHM, for one server."""

    def __init__(self, shm, name, host_port, user, password, ca):
        self.dir = os.path.join(shm, name)
        self.client = ct.Client(os.path.join(self.dir, "gannet"))
        self.gmd = os.path.join(self.dir, "gannet-md")
        self.client.write_config({"b": {"host": "localhost", "port": host_port, "user": user,
                                        "password": password, "ca_file": ca,
                                        "maildir": self.gmd, "timeout": 600}})
        self.mpoprc = os.path.join(self.dir, "mpoprc")
        self.mmd = os.path.join(self.dir, "mpop-md")
        with open(self.mpoprc, "w") as f:
            f.write("account b\nhost localhost\nport %d\ntls on\ntls_starttls off\n"
                    "tls_trust_file %s\nuser %s\npassword %s\nkeep on\ntimeout 600\n"
                    "uidls_file %s/mpop.uidls\ndelivery maildir %s\n"
                    % (host_port, ca, user, password, self.dir, self.mmd))
        os.chmod(self.mpoprc, 0o600)
        for d in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(self.mmd, d))
        self.env = self.client.env()

    def cmd(self, which):
        if which == "gannet":
            return [ct.GANNET, "-c", self.client.config, "-q", "fetch"]
        return ["mpop", "-C", self.mpoprc, "-q", "b"]

    def run(self, which):
        before = os.times()
        wall = timed(self.cmd(which), self.env if which == "gannet" else None)
        after = os.times()
        cpu = (after.children_user - before.children_user
               + after.children_system - before.children_system)
        return wall, cpu

    def count(self, which):
        root = self.gmd if which == "gannet" else self.mmd
        return sum(len(os.listdir(os.path.join(root, d))) for d in ("new", "cur")
                   if os.path.isdir(os.path.join(root, d)))


def bench_server(label, srv, md, owner, clients, n, k, reps, out):
    first = {}
    for which in ("gannet", "mpop"):
        first[which] = clients.run(which)
        got = clients.count(which)
        assert got == n, (which, got, n)
    polls = {"gannet": [], "mpop": []}
    for r in range(reps):
        fill(md.root, k, n + r * k, owner)
        order = ("mpop", "gannet") if r % 2 == 0 else ("gannet", "mpop")
        for which in order:
            polls[which].append(clients.run(which))
            got = clients.count(which)
            assert got == n + (r + 1) * k, (which, got, n + (r + 1) * k)
    lines = ["%s: kept mailbox of %d messages, %d new per poll, %d polls per client "
             "(implicit TLS, client Maildirs on tmpfs)" % (label, n, k, reps)]
    for which in ("gannet", "mpop"):
        walls = sorted(w for w, _c in polls[which])
        cpus = sorted(c for _w, c in polls[which])
        lines.append("  %-6s poll: median %.3f s (min %.3f, max %.3f) wall; CPU median %.3f s;"
                     " walls %s; first download %.1f s"
                     % (which, statistics.median(walls), walls[0], walls[-1],
                        statistics.median(cpus), " ".join("%.3f" % w for w, _c in polls[which]),
                        first[which][0]))
    for ln in lines:
        print(ln, flush=True)
    out.extend(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=100000)
    ap.add_argument("--new", type=int, default=10)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--servers", default="gannetd,dovecot")
    ap.add_argument("--corpus", default=CORPUS, help="a Maildir whose cur/ to hard-link ('' none)")
    ap.add_argument("--figures", help="append the result lines to this file")
    a = ap.parse_args()
    n, k = a.messages, a.new
    corpus = a.corpus if a.corpus and os.path.isdir(a.corpus) else None
    # On /var/tmp: the corpus's file system (hard links), and a disk as in real life.
    top = tempfile.mkdtemp(prefix="gannet-pollbench-", dir="/var/tmp")
    os.chmod(top, 0o755)  # Dovecot's unprivileged processes walk through it
    shm = tempfile.mkdtemp(prefix="gannet-pollbench-", dir="/dev/shm")
    certs = ct.make_certs(os.path.join(top, "certs"))
    out = []
    servers = []
    try:
        for name in a.servers.split(","):
            if name == "gannetd":
                srv = g.GannetServer(os.path.join(top, "gannetd"), certs["good"],
                                     {"log_level": "warning"})
                pw = srv.add_user("alice", scram=True)
                md = srv.maildir("alice")
                owner = None
                linked = populate(md.root, n, corpus)
                servers.append(srv)
                srv.start()
                port = srv.tls_port
            elif name == "dovecot":
                owner = (pwd.getpwuid(os.stat(os.path.join(corpus, "cur")).st_uid)
                         if corpus and os.geteuid() == 0 else dovecotsrv.mail_owner())
                d = os.path.join(top, "dovecot")
                os.makedirs(d)
                os.chmod(d, 0o755)
                srv = dovecotsrv.Dovecot(d, cert=certs["good"], owner=owner,
                                         auth_mechanisms="plain login scram-sha-256")
                pw = srv.add_user("alice")
                md = srv.maildir("alice")
                linked = populate(md.root, n, corpus, owner)
                servers.append(srv)
                srv.start()
                port = srv.tls_port
            else:
                raise SystemExit("unknown server %r" % name)
            print("%s: %d messages (%d hard links to %s)" % (name, n, linked, corpus),
                  flush=True)
            clients = Clients(shm, name, port, "alice", pw, certs["ca"])
            bench_server(name, srv, md, owner, clients, n, k, a.reps, out)
            if name == "gannetd":
                problems = srv.finish()
                assert not problems, problems
            else:
                assert not srv.stop()
            servers.remove(srv)
            shutil.rmtree(clients.dir, ignore_errors=True)
        if a.figures:
            with open(a.figures, "a") as f:
                f.write("\n".join(out) + "\n")
    finally:
        for srv in servers:
            if isinstance(srv, g.GannetServer):
                srv.finish()
            else:
                srv.stop()
        shutil.rmtree(top, ignore_errors=True)
        shutil.rmtree(shm, ignore_errors=True)


if __name__ == "__main__":
    main()
