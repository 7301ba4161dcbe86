#!/usr/bin/env python3
"""Helpers for bench/pg_bench.sh: percentiles, a raw PostgreSQL-over-TLS client (connection
set-up timing, thousands of idle sessions), process CPU/RSS readings and the summary table.

Standard library only (ssl, asyncio). Subcommands:
  pct FILE...                  p50/p99 (µs) of column 3 (latency) of pgbench --log files
  proc PID                     "utime+stime ticks" and VmRSS kB of a process
  connect --n N ...            N sequential connects (TLS + startup + select 1), p50/p99 ms
  idle --n N --pids A,B ...    opens N idle sessions, reports RSS before/with/after
  summary RESULTS              prints the table from key=value lines
"""
import argparse
import asyncio
import os
import socket
import ssl
import struct
import subprocess
import sys
import time


def percentile(sorted_vals, q):
    if not sorted_vals:
        raise SystemExit("no samples")
    i = min(len(sorted_vals) - 1, max(0, int(round(q * (len(sorted_vals) - 1)))))
    return sorted_vals[i]


def cmd_pct(args):
    vals = []
    for f in args.files:
        with open(f) as fh:
            for line in fh:
                parts = line.split()
                if len(parts) >= 3:
                    vals.append(int(parts[2]))
    vals.sort()  # all of them: the warm-up is a separate pgbench run
    print(f"{percentile(vals, 0.5)} {percentile(vals, 0.99)} {len(vals)}")


def proc_reading(pid):
    with open(f"/proc/{pid}/stat") as fh:
        stat = fh.read()
    fields = stat[stat.rindex(")") + 2:].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    rss = 0
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return ticks, rss


def tree_ticks(pid):
    """CPU ticks of a process and of all its children, live (utime+stime) or reaped
    (cutime+cstime): the PostgreSQL postmaster and its backends."""
    with open(f"/proc/{pid}/stat") as fh:
        stat = fh.read()
    f = stat[stat.rindex(")") + 2:].split()
    total = sum(int(x) for x in f[11:15])  # utime stime cutime cstime
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                st = fh.read()
        except OSError:
            continue
        g = st[st.rindex(")") + 2:].split()
        if int(g[1]) == pid:
            total += int(g[11]) + int(g[12])
    return total


def cmd_tree(args):
    print(tree_ticks(args.pid))


def cmd_proc(args):
    ticks, rss = proc_reading(args.pid)
    print(f"{ticks} {rss}")


# --- PostgreSQL wire protocol ---------------------------------------------------------------

SSL_REQUEST = struct.pack("!ii", 8, 80877103)


def startup_message(user, database):
    body = struct.pack("!i", 196608)
    for k, v in (("user", user), ("database", database), ("application_name", "pg_bench")):
        body += k.encode() + b"\0" + v.encode() + b"\0"
    body += b"\0"
    return struct.pack("!i", len(body) + 4) + body


def query_message(sql):
    body = sql.encode() + b"\0"
    return b"Q" + struct.pack("!i", len(body) + 4) + body


TERMINATE = b"X" + struct.pack("!i", 4)


def tls_context(a):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(a.ca)
    ctx.load_cert_chain(a.cert, a.key)
    ctx.check_hostname = True
    return ctx


class PgError(Exception):
    pass


def read_until_ready_sync(sock):
    """Reads messages until ReadyForQuery; raises on ErrorResponse."""
    buf = b""
    while True:
        while len(buf) < 5:
            chunk = sock.recv(65536)
            if not chunk:
                raise PgError("connection closed before ReadyForQuery")
            buf += chunk
        kind = buf[0:1]
        length = struct.unpack("!i", buf[1:5])[0]
        while len(buf) < 1 + length:
            chunk = sock.recv(65536)
            if not chunk:
                raise PgError("connection closed mid-message")
            buf += chunk
        msg, buf = buf[: 1 + length], buf[1 + length:]
        if kind == b"E":
            raise PgError(msg[5:].replace(b"\0", b" ").decode(errors="replace"))
        if kind == b"Z":
            return


def one_connect(a, ctx):
    t = time.perf_counter()
    raw = socket.create_connection((a.host, a.port))
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    raw.sendall(SSL_REQUEST)
    if raw.recv(1) != b"S":
        raise PgError("server refused TLS")
    s = ctx.wrap_socket(raw, server_hostname=a.host)
    t_tls = time.perf_counter()
    s.sendall(startup_message(a.user, a.dbname))
    read_until_ready_sync(s)
    t_ready = time.perf_counter()
    s.sendall(query_message("select 1"))
    read_until_ready_sync(s)
    elapsed = time.perf_counter() - t
    s.sendall(TERMINATE)
    s.close()
    return elapsed, t_tls - t, t_ready - t_tls


def cmd_rtt(a):
    """Round trips of a simple-protocol `select 1` on one connection, timed one by one."""
    ctx = tls_context(a)
    raw = socket.create_connection((a.host, a.port))
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    raw.sendall(SSL_REQUEST)
    if raw.recv(1) != b"S":
        raise PgError("server refused TLS")
    s = ctx.wrap_socket(raw, server_hostname=a.host)
    s.sendall(startup_message(a.user, a.dbname))
    read_until_ready_sync(s)
    q = query_message("select 1")
    samples = []
    for i in range(a.warmup + a.n):
        t = time.perf_counter_ns()
        s.sendall(q)
        read_until_ready_sync(s)
        if i >= a.warmup:
            samples.append((time.perf_counter_ns() - t) / 1000)
    s.sendall(TERMINATE)
    s.close()
    samples.sort()
    print(f"{percentile(samples, 0.5):.0f} {percentile(samples, 0.99):.0f} {len(samples)}")


def cmd_connect(a):
    ctx = tls_context(a)
    for _ in range(a.warmup):
        one_connect(a, ctx)
    runs = [one_connect(a, ctx) for _ in range(a.n)]
    total, tls, startup = (sorted(x[i] * 1000 for x in runs) for i in range(3))
    # whole p50, p99, n; then the p50 of the two phases: TCP + TLS handshake, startup to
    # ReadyForQuery (the rest is the first query).
    print(f"{percentile(total, 0.5):.3f} {percentile(total, 0.99):.3f} {len(total)} "
          f"{percentile(tls, 0.5):.3f} {percentile(startup, 0.5):.3f}")


async def open_idle(a, ctx, sem):
    async with sem:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(a.host, a.port), 30)
        writer.write(SSL_REQUEST)
        await writer.drain()
        if await asyncio.wait_for(reader.readexactly(1), 30) != b"S":
            raise PgError("server refused TLS")
        await asyncio.wait_for(writer.start_tls(ctx, server_hostname=a.host), 30)
        writer.write(startup_message(a.user, a.dbname))
        await writer.drain()
        while True:
            head = await asyncio.wait_for(reader.readexactly(5), 30)
            length = struct.unpack("!i", head[1:5])[0]
            body = await reader.readexactly(length - 4)
            if head[0:1] == b"E":
                raise PgError(body.replace(b"\0", b" ").decode(errors="replace"))
            if head[0:1] == b"Z":
                return reader, writer


def rss_of(pids):
    return [proc_reading(p)[1] for p in pids]


async def idle_main(a):
    ctx = tls_context(a)
    pids = [int(p) for p in a.pids.split(",")]
    names = a.names.split(",")
    out = {}
    before = rss_of(pids)
    sem = asyncio.Semaphore(a.parallel)
    t = time.perf_counter()
    results = await asyncio.gather(*(open_idle(a, ctx, sem) for _ in range(a.n)),
                                   return_exceptions=True)
    open_s = time.perf_counter() - t
    conns = [r for r in results if not isinstance(r, BaseException)]
    errors = [r for r in results if isinstance(r, BaseException)]
    out["idle_opened"] = len(conns)
    out["idle_failed"] = len(errors)
    out["idle_open_s"] = f"{open_s:.1f}"
    if errors:
        print(f"idle: {len(errors)} sessions failed, first: {errors[0]!r}", file=sys.stderr)
    await asyncio.sleep(a.settle)
    during = rss_of(pids)
    if a.check:
        out["idle_server_sessions"] = subprocess.run(
            a.check, shell=True, check=True, capture_output=True, text=True).stdout.strip()
    # Still alive? One query on a handful of them.
    for reader, writer in conns[:: max(1, len(conns) // 10)]:
        writer.write(query_message("select 1"))
        await writer.drain()
        while True:
            head = await asyncio.wait_for(reader.readexactly(5), 30)
            length = struct.unpack("!i", head[1:5])[0]
            await reader.readexactly(length - 4)
            if head[0:1] == b"E":
                raise PgError("idle session failed its query")
            if head[0:1] == b"Z":
                break
    for _, writer in conns:
        writer.write(TERMINATE)
        writer.close()
    for _, writer in conns:
        try:
            await asyncio.wait_for(writer.wait_closed(), 10)
        except Exception:  # noqa: BLE001 - closing races are not interesting here
            pass
    await asyncio.sleep(a.settle)
    after = rss_of(pids)
    for name, b, d, f in zip(names, before, during, after):
        out[f"idle_rss_before_{name}"] = b
        out[f"idle_rss_during_{name}"] = d
        out[f"idle_rss_after_{name}"] = f
    for k, v in out.items():
        print(f"{k}={v}")
    if errors:
        sys.exit(1)


def cmd_idle(a):
    asyncio.run(idle_main(a))


# --- summary --------------------------------------------------------------------------------


def read_results(path):
    """The key=value lines the script collected."""
    r = {}
    with open(path) as fh:
        for line in fh:
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                r[k] = v
    return r


def print_table(hdr, rows):
    """Columns padded to their widest cell, a dashed rule under the header."""
    widths = [max(len(str(x[i])) for x in rows + [hdr]) for i in range(len(hdr))]

    def line(x):
        return "  ".join(str(v).ljust(w) for v, w in zip(x, widths)).rstrip()

    print(line(hdr))
    print(line(tuple("-" * w for w in widths)))
    for x in rows:
        print(line(x))


def cmd_reference(a):
    """Direct vs PgBouncer (TLS both sides, no audit), and Portcullis against PgBouncer."""
    r = read_results(a.results)

    def f(k):
        return float(r[k])

    rows = []
    for key, what in (("c1", "pgbench -S -M prepared, 1 client (TPS)"),
                      ("c8", "pgbench -S -M prepared, 8 clients (TPS)"),
                      ("simple", "pgbench -S -M simple, 8 clients (TPS)")):
        d, b, p = f(f"tps_direct_{key}"), f(f"tps_pgbouncer_{key}"), f(f"tps_proxy_{key}")
        rows.append((what, f"{d:,.0f}", f"{b:,.0f}", f"ratio {b / d:.2f}", f"ratio {p / b:.2f}", ""))
    for q in ("p50", "p99"):
        d, b, p = f(f"lat_direct_{q}"), f(f"lat_pgbouncer_{q}"), f(f"lat_proxy_{q}")
        rows.append((f"SELECT 1 round trip {q} (µs)", f"{d:.0f}", f"{b:.0f}", f"{b - d:+.0f} µs",
                     f"{p - b:+.0f} µs", ""))
    d, b, p = (f(f"latavg_{x}") * 1000 for x in ("direct", "pgbouncer", "proxy"))
    rows.append(("  pgbench select 1 latency average (µs)", f"{d:.0f}", f"{b:.0f}",
                 f"{b - d:+.0f} µs", f"{p - b:+.0f} µs", ""))
    for k, what in (("postgres", "CPU per txn at 8 clients (µs): PostgreSQL"),
                    ("pgbench", "  pgbench (client)"),
                    ("pgbouncer", "  PgBouncer (both processes)")):
        d, b = f(f"cpu_{k}_direct"), f(f"cpu_{k}_pgbouncer")
        rows.append((what, f"{d:.1f}", f"{b:.1f}", f"{b - d:+.1f} µs", "", ""))
    d = sum(f(f"cpu_{x}_direct") for x in ("postgres", "pgbench"))
    b = sum(f(f"cpu_{x}_pgbouncer") for x in ("postgres", "pgbench", "pgbouncer"))
    rows.append(("  all three", f"{d:.1f}", f"{b:.1f}", f"ratio {d / b:.2f}", "",
                 "TPS ratio ceiling when CPU-bound"))
    rows.append((f"  CPUs kept busy (of {r.get('ncpu', '?')})", f"{f('busy_direct'):.2f}",
                 f"{f('busy_pgbouncer'):.2f}", "", "", ""))
    print_table(("what", "direct", "PgBouncer", "vs direct", "proxied vs PgBouncer", ""), rows)
    print("(no connection set-up rows: PgBouncer keeps its server connections open between clients)")


def cmd_audit(a):
    """Auditing on (pg1) vs off (pg1-quiet, `audit_queries: false`) through the same agent."""
    r = read_results(a.results)

    def f(k):
        return float(r[k])

    rows = []
    for key, cpu, what in (("tpcb", "_tpcb", "pgbench (default TPC-B-like), 8 clients"),
                           ("c8", "", "pgbench -S -M prepared, 8 clients"),
                           ("simple", "_simple", "pgbench -S -M simple, 8 clients"),
                           ("c1", None, "pgbench -S -M prepared, 1 client")):
        on, off = f(f"tps_proxy_{key}"), f(f"tps_quiet_{key}")
        cpu_txt = ""
        if cpu is not None:
            c_on = f(f"cpu_cluster_proxy{cpu}") + f(f"cpu_agent_proxy{cpu}")
            c_off = f(f"cpu_cluster_quiet{cpu}") + f(f"cpu_agent_quiet{cpu}")
            cpu_txt = f"{c_off:.1f} / {c_on:.1f}"
        rows.append((what, f"{off:,.0f}", f"{on:,.0f}", f"{(1 - on / off) * 100:+.1f} %",
                     r.get(f"events_proxy_{key}", "?"), cpu_txt))
    print_table(("run", "audit off TPS", "audit on TPS", "drop", "events/txn",
                 "Portcullis CPU/txn off / on (µs)"), rows)
    print("target (issue 4): with every query audited, TPS drops by no more than 5 %")


def cmd_summary(a):
    r = read_results(a.results)

    def f(k):
        return float(r[k])

    rows = []

    def row(what, direct, proxied, delta, note=""):
        rows.append((what, direct, proxied, delta, note))

    for c in ("1", "8"):
        d, p = f(f"tps_direct_c{c}"), f(f"tps_proxy_c{c}")
        note = "target ≥ 0.75" if c == "8" else ""
        ok = " MET" if c == "8" and p / d >= 0.75 else (" MISSED" if c == "8" else "")
        row(f"pgbench -S -M prepared, {c} client{'s' if c != '1' else ''} (TPS)",
            f"{d:,.0f}", f"{p:,.0f}", f"ratio {p / d:.2f}", note + ok)
    d, p = f("tps_direct_simple"), f("tps_proxy_simple")
    row("pgbench -S -M simple, 8 clients (TPS)", f"{d:,.0f}", f"{p:,.0f}", f"ratio {p / d:.2f}",
        "1 audit event per query instead of 3")
    for q in ("p50", "p99"):
        d, p = f(f"lat_direct_{q}"), f(f"lat_proxy_{q}")
        row(f"SELECT 1 round trip {q} (µs)", f"{d:.0f}", f"{p:.0f}", f"+{p - d:.0f} µs")
    d, p = f("latavg_direct") * 1000, f("latavg_proxy") * 1000
    row("  pgbench select 1 latency average (µs)", f"{d:.0f}", f"{p:.0f}", f"+{p - d:.0f} µs")
    for q in ("p50", "p99"):
        d, p = f(f"conn_direct_{q}"), f(f"conn_proxy_{q}")
        note = ""
        if q == "p50":
            note = "target added ≤ 3 ms" + (" MET" if p - d <= 3 else " MISSED")
        row(f"connect + TLS + startup + SELECT 1, {q} (ms)", f"{d:.2f}", f"{p:.2f}",
            f"+{p - d:.2f} ms", note)
    for k, label in (("tls", "TCP + TLS handshake"), ("startup", "startup to ReadyForQuery")):
        d, p = f(f"conn_direct_{k}"), f(f"conn_proxy_{k}")
        row(f"  of which {label}, p50 (ms)", f"{d:.2f}", f"{p:.2f}", f"{p - d:+.2f} ms")
    d, p = f("tpsC_direct"), f("tpsC_proxy")
    row("pgbench -C -S (new connection per txn, TPS)", f"{d:,.0f}", f"{p:,.0f}",
        f"ratio {p / d:.2f}")
    d, p = f("connavg_direct"), f("connavg_proxy")
    row("  pgbench average connection time (ms)", f"{d:.2f}", f"{p:.2f}", f"+{p - d:.2f} ms")
    d, p = f("cpu_postgres_direct"), f("cpu_postgres_proxy")
    row("CPU per txn at 8 clients (µs): PostgreSQL", f"{d:.1f}", f"{p:.1f}", f"{p - d:+.1f} µs")
    d, p = f("cpu_pgbench_direct"), f("cpu_pgbench_proxy")
    row("  pgbench (client)", f"{d:.1f}", f"{p:.1f}", f"{p - d:+.1f} µs")
    c, a = f("cpu_cluster_proxy"), f("cpu_agent_proxy")
    row("  cluster process (auth + proxy)", f"{f('cpu_cluster_direct'):.1f}", f"{c:.1f}", "")
    row("  agent process", f"{f('cpu_agent_direct'):.1f}", f"{a:.1f}", "")
    td = sum(f(f"cpu_{x}_direct") for x in ("postgres", "pgbench", "cluster", "agent"))
    tp = sum(f(f"cpu_{x}_proxy") for x in ("postgres", "pgbench", "cluster", "agent"))
    row("  all four", f"{td:.1f}", f"{tp:.1f}", f"ratio {td / tp:.2f}",
        "TPS ratio ceiling when CPU-bound")
    d, p = f("busy_direct"), f("busy_proxy")
    row("  CPUs kept busy by the four (of %s)" % r.get("ncpu", "?"), f"{d:.2f}", f"{p:.2f}", "")
    row("CPU per txn, -M simple, 8 clients (µs): cluster", "-",
        f"{f('cpu_cluster_proxy_simple'):.1f}", "")
    row("  agent", "-", f"{f('cpu_agent_proxy_simple'):.1f}", "")

    n = int(r["idle_opened"])
    for name, label in (("cluster", "cluster (auth+proxy)"), ("agent", "agent")):
        b, d, after = (int(r[f"idle_rss_{x}_{name}"]) for x in ("before", "during", "after"))
        per = (d - b) * 1024 / max(n, 1)
        row(f"{n} idle sessions: {label} RSS (MiB)", f"{b / 1024:.1f} before",
            f"{d / 1024:.1f} open", f"{per / 1024:.1f} KiB/session",
            f"{after / 1024:.1f} after close")
    print_table(("what", "direct", "proxied", "delta", ""), rows)
    print("\naudit events stored by the end of each proxied run, per transaction: "
          + ", ".join(f"{k}: {r[f'events_proxy_{k}']}" for k in ("c1", "c8", "simple")))
    print(f"idle sessions: {n} opened in {r['idle_open_s']} s, {r['idle_failed']} failed, "
          f"{r.get('idle_server_sessions', '?')} server sessions seen by PostgreSQL")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("pct")
    s.add_argument("files", nargs="+")
    s.set_defaults(fn=cmd_pct)
    s = sub.add_parser("tree")
    s.add_argument("pid", type=int)
    s.set_defaults(fn=cmd_tree)
    s = sub.add_parser("proc")
    s.add_argument("pid", type=int)
    s.set_defaults(fn=cmd_proc)
    for name, fn in (("connect", cmd_connect), ("rtt", cmd_rtt), ("idle", cmd_idle)):
        s = sub.add_parser(name)
        for opt in ("host", "user", "dbname", "ca", "cert", "key"):
            s.add_argument(f"--{opt}", required=True)
        s.add_argument("--port", type=int, required=True)
        s.add_argument("--n", type=int, required=True)
        s.set_defaults(fn=fn)
        if name == "connect":
            s.add_argument("--warmup", type=int, default=10)
        elif name == "rtt":
            s.add_argument("--warmup", type=int, default=200)
        else:
            s.add_argument("--pids", required=True)
            s.add_argument("--names", required=True)
            s.add_argument("--parallel", type=int, default=32)
            s.add_argument("--settle", type=float, default=3.0)
            s.add_argument("--check", default="")
    for name, fn in (("summary", cmd_summary), ("reference", cmd_reference),
                     ("audit", cmd_audit)):
        s = sub.add_parser(name)
        s.add_argument("results")
        s.set_defaults(fn=fn)
    a = p.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
