#!/usr/bin/python3
"""Turn bench/run.sh's result lines into one Markdown table of medians (min-max) and ratios."""
import statistics
import sys

SERVERS = ["gannetd-shared", "gannetd-nocache", "gannetd-perconn", "dovecot-default", "dovecot-hp",
           "dovecot-hp-cache"]
TITLES = {
    "gannetd-shared": "gannetd shared",
    "gannetd-nocache": "gannetd shared, no auth cache",
    "dovecot-hp-cache": "Dovecot high-perf + auth cache",
    "gannetd-perconn": "gannetd per-conn",
    "dovecot-default": "Dovecot default",
    "dovecot-hp": "Dovecot high-perf",
}
# (label, key, title, unit, higher_is_better, target ratio gannetd-shared/dovecot-hp or None)
FIGURES = [
    ("sessions_plain", "sessions_per_s", "sessions/s, 16 clients, plain", "1/s", True, 4.0),
    ("sessions_plain", "p50_ms", "  latency p50, plain", "ms", False, None),
    ("sessions_plain", "p99_ms", "  latency p99, plain", "ms", False, 1 / 3),
    ("sessions_plain", "client_cpu_pct", "  load generator CPU, plain", "%", None, None),
    ("sessions_tls", "sessions_per_s", "sessions/s, 16 clients, TLS", "1/s", True, 3.0),
    ("sessions_tls", "p50_ms", "  latency p50, TLS", "ms", False, None),
    ("sessions_tls", "p99_ms", "  latency p99, TLS", "ms", False, 1 / 3),
    ("sessions_tls", "client_cpu_pct", "  load generator CPU, TLS", "%", None, None),
    ("sessions_tls_resume", "sessions_per_s", "sessions/s, 16 clients, TLS resumed", "1/s", True, None),
    ("sessions_tls_resume", "p99_ms", "  latency p99, TLS resumed", "ms", False, None),
    ("retr_small", "mb_per_s", "RETR 1,000 x 2-50 KB", "MB/s", True, 3.0),
    ("retr_small_pipe", "mb_per_s", "RETR 1,000 x 2-50 KB, 16 pipelined", "MB/s", True, 3.0),
    ("retr_huge", "mb_per_s", "RETR 20 x 10 MB", "MB/s", True, 3.0),
    ("bigbox_cold", "total_ms", "100k box cold: connect to QUIT", "ms", False, None),
    ("bigbox_cold", "login_ms", "100k box cold: login", "ms", False, None),
    ("bigbox_cold", "stat_ms", "100k box cold: STAT", "ms", False, None),
    ("bigbox_cold", "list_ms", "100k box cold: LIST", "ms", False, None),
    ("bigbox_cold", "uidl_ms", "100k box cold: UIDL", "ms", False, None),
    ("bigbox_warm", "total_ms", "100k box warm: connect to QUIT", "ms", False, None),
    ("bigbox_warm", "login_ms", "100k box warm: login", "ms", False, None),
    ("bigbox_warm", "stat_ms", "100k box warm: STAT", "ms", False, None),
    ("bigbox_warm", "list_ms", "100k box warm: LIST", "ms", False, None),
    ("bigbox_warm", "uidl_ms", "100k box warm: UIDL", "ms", False, None),
    ("idle_plain", "kib_per_conn", "idle memory per connection, plain", "KiB", False, 0.1),
    ("idle_tls", "kib_per_conn", "idle memory per connection, TLS", "KiB", False, 0.1),
    ("idle_many_plain", "logged_in", "many idle connections held, plain", "conns", True, None),
    ("idle_many_plain", "kib_per_conn", "  memory per connection", "KiB", False, None),
    ("idle_many_tls", "logged_in", "many idle connections held, TLS", "conns", True, None),
    ("idle_many_tls", "kib_per_conn", "  memory per connection", "KiB", False, None),
]


def parse(path):
    runs = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = {}
            for tok in line.split():
                if "=" in tok:
                    k, v = tok.split("=", 1)
                    fields[k] = v
            runs.append(fields)
    return runs


def fmt(v):
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def main():
    runs = parse(sys.argv[1])
    machine = open(sys.argv[2], encoding="utf-8").read().strip() if len(sys.argv) > 2 else ""
    present = [s for s in SERVERS if any(r.get("server") == s for r in runs)]
    head = ["figure", "unit"] + [TITLES[s] for s in present]
    head += ["shared / hp", "per-conn / hp"]
    if "dovecot-hp-cache" in present:
        head += ["shared / hp+cache"]
    head += ["target", "met"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    errors = {}
    for label, key, title, unit, higher, target in FIGURES:
        cells, med = [], {}
        for s in present:
            vals, errs = [], 0
            for r in runs:
                if r.get("server") != s or r.get("label") != label:
                    continue
                e = r.get("errors", "0")
                if e not in ("0", "-"):
                    errs += 1
                    errors[(s, label, r.get("rep"))] = (
                        f"errors={e} {r.get('first_error', r.get('error', ''))} "
                        f"(logged in {r.get('logged_in', '-')}/{r.get('connections', '-')})"
                        if "connections" in r else
                        f"errors={e} {r.get('first_error', r.get('error', ''))}")
                if key in r:
                    try:
                        vals.append(float(r[key]))
                    except ValueError:
                        pass
            if not vals:
                cells.append("-")
                continue
            m = statistics.median(vals)
            med[s] = m
            cell = fmt(m) + (f" ({fmt(min(vals))}-{fmt(max(vals))})" if len(vals) > 1 else "")
            if errs:
                cell += f" [{errs} run(s) with errors]"
            cells.append(cell)
        ratios = []
        for g in ("gannetd-shared", "gannetd-perconn"):
            if g in med and "dovecot-hp" in med and med["dovecot-hp"] > 0:
                ratios.append(f"{med[g] / med['dovecot-hp']:.3g}x")
            else:
                ratios.append("-")
        if "dovecot-hp-cache" in present:
            hc = med.get("dovecot-hp-cache", 0)
            ratios.append(f"{med['gannetd-shared'] / hc:.3g}x"
                          if hc > 0 and "gannetd-shared" in med else "-")
        tcell, met = "-", ""
        if target is not None and "gannetd-shared" in med and med.get("dovecot-hp", 0) > 0:
            r = med["gannetd-shared"] / med["dovecot-hp"]
            tcell = (">= " if higher else "<= ") + (f"{target:.2f}x" if target < 1 else f"{target:.0f}x")
            ok = r >= target if higher else r <= target
            met = "yes" if ok else "**no**"
        print("| " + " | ".join([title, unit] + cells + ratios + [tcell, met]) + " |")
    loads = [float(r["load1"]) for r in runs if "load1" in r]
    if machine:
        print()
        print(machine)
    if loads:
        print(f"load average (1 min) at the measurements: median {statistics.median(loads):.1f}, "
              f"max {max(loads):.1f}")
    if errors:
        print()
        print("Runs with errors:")
        for (s, label, rep), e in sorted(errors.items()):
            print(f"- {s} {label} rep {rep}: {e}")


if __name__ == "__main__":
    main()
