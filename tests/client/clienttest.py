"""Helpers for the gannet fetch-client suite: certificates, running gannet with its own HOME,
and the local form of messages. tests/integration is put on sys.path here, so a client test can
`import gannettest` (gannetd) and `import dovecotsrv` (the real Dovecot) alike.

Environment: GANNET_BUILD (directory holding gannet and gannetd, default <repo>/build),
GANNETD (a gannetd binary to use instead of $GANNET_BUILD/gannetd), GANNET_ASAN=1 (timeouts x3).
"""

import hashlib
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

import gannettest as g  # noqa: E402  (the server suite's helpers: GannetServer, Maildir ...)

if os.environ.get("GANNETD"):
    g.GANNETD = os.path.abspath(os.environ["GANNETD"])
GANNET = os.path.join(g.BUILD, "gannet")
t = g.t

# sysexits.h
EX_OK, EX_USAGE, EX_DATAERR, EX_NOINPUT, EX_NOUSER, EX_NOHOST = 0, 64, 65, 66, 67, 68
EX_UNAVAILABLE, EX_SOFTWARE, EX_OSERR, EX_IOERR, EX_TEMPFAIL = 69, 70, 71, 74, 75
EX_PROTOCOL, EX_NOPERM, EX_CONFIG = 76, 77, 78


def local_form(stored: bytes) -> bytes:
    """What gannet writes for a message the server stores as STORED: the wire form with each
    CRLF turned back into LF (bare CRs kept)."""
    return g.to_wire(stored).replace(b"\r\n", b"\n")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------------
# Certificates (openssl CLI only)

CA_CNF = """[ ca ]
default_ca = d
[ d ]
dir = {d}
database = {d}/index.txt
new_certs_dir = {d}
serial = {d}/serial
default_md = sha256
policy = any
copy_extensions = copy
unique_subject = no
[ any ]
commonName = supplied
"""


def _run(args, **kw):
    return subprocess.run(args, check=True, capture_output=True, timeout=60, **kw)


def make_certs(d):
    """A test CA and three server certificates signed by it: 'good' (localhost, 127.0.0.1),
    'other' (other.example only) and 'expired' (localhost, valid only in 2020).
    Returns {'ca': path, 'good': (cert, key), ...}."""
    d = str(d)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "ca.cnf"), "w") as f:
        f.write(CA_CNF.format(d=d))
    open(os.path.join(d, "index.txt"), "w").close()
    with open(os.path.join(d, "serial"), "w") as f:
        f.write("1000\n")
    ca, cakey = os.path.join(d, "ca.pem"), os.path.join(d, "ca.key")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    _run(["openssl", "req", "-x509"] + ec + ["-keyout", cakey, "-out", ca, "-days", "7",
         "-subj", "/CN=Gannet Test CA", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    out = {"ca": ca}
    specs = {"good": ("localhost", "DNS:localhost,IP:127.0.0.1", None),
             "other": ("other.example", "DNS:other.example", None),
             "expired": ("localhost", "DNS:localhost,IP:127.0.0.1",
                         ("20200101000000Z", "20200201000000Z"))}
    for name, (cn, san, dates) in specs.items():
        key, csr, crt = (os.path.join(d, name + ext) for ext in (".key", ".csr", ".pem"))
        _run(["openssl", "req"] + ec + ["-keyout", key, "-out", csr, "-subj", "/CN=" + cn,
             "-addext", "subjectAltName=" + san])
        when = ["-startdate", dates[0], "-enddate", dates[1]] if dates else ["-days", "7"]
        _run(["openssl", "ca", "-batch", "-notext", "-config", os.path.join(d, "ca.cnf"),
              "-cert", ca, "-keyfile", cakey, "-in", csr, "-out", crt] + when)
        out[name] = (crt, key)
    return out


def spki_pin(cert_path):
    """The 'sha256//BASE64' pin of a certificate's public key, computed with the openssl CLI."""
    pub = _run(["openssl", "x509", "-in", cert_path, "-noout", "-pubkey"]).stdout
    der = _run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub).stdout
    import base64
    return "sha256//" + base64.b64encode(hashlib.sha256(der).digest()).decode()


def account_for(server, user, certs, tls="tls", **extra):
    """Account settings for USER on a running server (gannettest.GannetServer or
    dovecotsrv.Dovecot: anything with port, tls_port and password(user)). Lives here, not in
    conftest, so it stays importable when pytest collects tests/client and tests/integration in
    one run (both have a conftest module, and only one of them is `conftest`)."""
    s = {"host": "localhost", "port": server.tls_port if tls == "tls" else server.port,
         "tls": tls, "user": user, "password": server.password(user),
         "ca_file": certs["ca"], "timeout": 20}
    s.update(extra)
    return s


# ---------------------------------------------------------------------------------------------
# Running gannet


class Client:
    """gannet with a private HOME: config in ~/.config/gannet/config, state in ~/.state."""

    def __init__(self, base):
        self.base = str(base)
        self.home = os.path.join(self.base, "home")
        self.conf_dir = os.path.join(self.home, ".config", "gannet")
        os.makedirs(self.conf_dir, exist_ok=True)
        self.config = os.path.join(self.conf_dir, "config")
        self.state = os.path.join(self.home, ".state")

    def maildir(self, account="acct"):
        return os.path.join(self.home, "Mail", account)

    def write_config(self, accounts, extra_global="", mode=0o600):
        """ACCOUNTS: {name: {key: value}}. A maildir under ~/Mail/NAME is added unless the
        account names a maildir or an mda."""
        lines = ["# written by the gannet test suite", "state_dir = %s" % self.state]
        if extra_global:
            lines.append(extra_global)
        for name, settings in accounts.items():
            lines.append("")
            lines.append("[%s]" % name)
            s = dict(settings)
            if not {"maildir", "mda", "mbox", "delivery"} & set(s):
                s["maildir"] = self.maildir(name)
            for k, v in s.items():
                if v is None:
                    continue
                lines.append("%s = %s" % (k, v))
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.chmod(self.config, mode)

    def env(self, extra=None):
        env = {"HOME": self.home, "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "LANG": "C"}
        if g.ASAN:
            env["ASAN_OPTIONS"] = "detect_leaks=0"
        env.update(extra or {})
        return env

    def run(self, *args, timeout=None, env=None, check_san=True):
        """Run gannet ARGS; returns CompletedProcess with text output."""
        p = subprocess.run([GANNET] + list(args), capture_output=True,
                           timeout=timeout if timeout is not None else t(60),
                           env=self.env(env), cwd=self.base)
        out = p.stdout.decode("utf-8", "replace")
        err = p.stderr.decode("utf-8", "replace")
        if check_san:
            for m in g.SAN_MARKERS:
                assert m not in err, err
        return subprocess.CompletedProcess(p.args, p.returncode, out, err)

    def fetch(self, *accounts, args=(), **kw):
        return self.run(*args, "fetch", *accounts, **kw)

    def popen(self, *args, **kw):
        return subprocess.Popen([GANNET] + list(args), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=self.env(kw.pop("env", None)),
                                cwd=self.base, **kw)

    def delivered(self, account="acct", maildir=None):
        """Every message file in new/ and cur/ of the account's Maildir: {name: bytes}."""
        root = maildir or self.maildir(account)
        out = {}
        for sub in ("new", "cur"):
            p = os.path.join(root, sub)
            if not os.path.isdir(p):
                continue
            for n in os.listdir(p):
                with open(os.path.join(p, n), "rb") as f:
                    out[n] = f.read()
        return out

    def mbox(self, account="acct"):
        return os.path.join(self.home, "Mail", account + ".mbox")

    def tmp_files(self, account="acct"):
        p = os.path.join(self.maildir(account), "tmp")
        return os.listdir(p) if os.path.isdir(p) else []


def mbox_parse(data: bytes):
    """Split an mboxrd file into [(from_line, message)]: a message starts at a line beginning
    "From ", ends with the empty separator line, and has one '>' taken off each >+From line."""
    import re
    assert data == b"" or data.endswith(b"\n\n"), data[-80:]
    out = []
    for ln in data.split(b"\n")[:-1]:
        if ln.startswith(b"From "):
            out.append((ln, []))
        else:
            assert out, "mbox does not start with a From_ line"
            out[-1][1].append(re.sub(rb"^>(>*From )", rb"\1", ln))
    msgs = []
    for frm, lines in out:
        assert lines and lines[-1] == b"", "message without its separator line"
        msgs.append((frm, b"".join(ln + b"\n" for ln in lines[:-1])))
    return msgs


def mbox_messages(path):
    """The messages of the mboxrd file PATH (unquoted), or [] when it does not exist."""
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        return [m for _f, m in mbox_parse(f.read())]
