#!/usr/bin/env bash
# PostgreSQL through Portcullis against a direct mutual-TLS connection, in one run.
#
# Builds its own stack in a temp dir: a cluster (auth + proxy, second factor off, log level
# warn), its own PostgreSQL 15 on a free loopback port with a certificate from the db CA
# (database `bench` owned by role `bench`, `pgbench -i -s 10`), a database agent process that
# joins over the network tunnel, a user and `pc db login`. Then measures both paths:
#   - pgbench -S -M prepared, 1 client and 8 clients (-j 2): TPS and the ratio (target ≥ 0.75)
#   - SELECT 1 round trip on one connection, p50/p99 (timed one by one by pg_bench.py; pgbench
#     --log rounds sub-100 µs latencies to 0 too often to be used here), and pgbench's average
#   - pgbench -S -M simple, 8 clients: one audit event per query instead of three
#   - auditing on vs off: the same runs and pgbench's default TPC-B-like script through a
#     second database entry for the same PostgreSQL with `audit_queries: false` (pg1-quiet)
#   - connection set-up (TCP + TLS + startup + SELECT 1), p50/p99 (target added ≤ 3 ms), and
#     pgbench -C
#   - CPU (utime+stime) of the cluster and of the agent process per transaction, 8 clients
#   - N (2000) concurrent idle sessions through one proxy and one agent: RSS per session
# In the same run, a reference path (unless PG_BENCH_REFERENCE=0; skipped with a note when
# pgbouncer is not installed): PgBouncer, two processes sharing one loopback port with
# so_reuseport (it is single-threaded; two use both cores), run as `postgres`, session pooling,
# mutual TLS 1.3 on both sides (clients: verify-full + certificate auth with the direct path's
# certificate; PostgreSQL: verify-full with the same certificate) and no auditing. It gets the
# three pgbench TPS runs, the SELECT 1 round trips and the CPU per transaction, and shows the
# ceiling any proxy that terminates TLS on both sides reaches here, where pgbench, the proxy
# and PostgreSQL share the CPUs. (Connection set-up is not compared: PgBouncer pools server
# connections.)
# Then prints a table (the reference in a table of its own below it). Exits non-zero when
# anything fails; cleans up after itself.
#
# Usage: bench/pg_bench.sh            (run as root: PostgreSQL runs as `postgres` via runuser)
# Needs release binaries: cargo build --release --workspace (PORTCULLIS_BIN_DIR or
# CARGO_TARGET_DIR pick them up). Knobs (environment): PG_BENCH_T (20, seconds per pgbench
# TPS run), PG_BENCH_SESSIONS (2000), PG_BENCH_LAT_N (2000), PG_BENCH_CONN_N (200),
# PG_BENCH_TOPOLOGY (remote: agent process over the tunnel; single: one process),
# PG_BENCH_KEEP=1 (keep the temp dir), PG_BENCH_PERF=1 (perf record the proxied 8-client run;
# report written to the temp dir, which is then kept), PG_BENCH_REFERENCE=0 (no PgBouncer path).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
T="${PG_BENCH_T:-20}"
# remote: the agent is its own process joined over the network tunnel (default);
# single: auth, proxy and agent in one process (the single-node default deployment).
TOPOLOGY="${PG_BENCH_TOPOLOGY:-remote}"
case "$TOPOLOGY" in remote|single) ;; *) echo "PG_BENCH_TOPOLOGY must be remote or single" >&2; exit 2 ;; esac
SESSIONS="${PG_BENCH_SESSIONS:-2000}"
LAT_N="${PG_BENCH_LAT_N:-2000}"
CONN_N="${PG_BENCH_CONN_N:-200}"
bin="${PORTCULLIS_BIN_DIR:-${CARGO_TARGET_DIR:-$repo/target}/release}"
pgbin=/usr/lib/postgresql/15/bin
helper="$repo/bench/pg_bench.py"

die() { echo "pg_bench: $*" >&2; exit 1; }
for b in portcullis pcctl pc; do
  [ -x "$bin/$b" ] || die "$bin/$b not found: cargo build --release --workspace first (or set PORTCULLIS_BIN_DIR)"
done
for b in initdb pg_ctl pgbench psql; do [ -x "$pgbin/$b" ] || die "$pgbin/$b missing (apt-get install postgresql)"; done
[ -x /usr/bin/time ] || die "/usr/bin/time missing (apt-get install time)"
if [ -n "${PG_BENCH_PERF:-}" ]; then command -v perf >/dev/null || die "PG_BENCH_PERF needs perf (apt-get install linux-perf)"; fi
[ "$(id -u)" = 0 ] || die "run as root (PostgreSQL is started as the postgres user with runuser)"
pgbouncer_bin=""
if [ "${PG_BENCH_REFERENCE:-1}" != 0 ]; then
  pgbouncer_bin=$(command -v pgbouncer || true)
  [ -n "$pgbouncer_bin" ] || echo "pg_bench: note: pgbouncer not installed (apt-get install pgbouncer), skipping the PgBouncer reference path" >&2
fi

# Each idle session costs a socket in this script, two in the proxy (client + tunnel is
# multiplexed, but be generous), one in the agent and one PostgreSQL backend.
want_fds=$((SESSIONS * 2 + 1024))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$want_fds" ]; then
  ulimit -n "$want_fds" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
  [ "$(ulimit -n)" -ge "$want_fds" ] || die "ulimit -n is $(ulimit -n), need $want_fds"
fi

dir=$(mktemp -d /tmp/pg-bench.XXXXXX)
chmod 755 "$dir"
cluster_pid=""; agent_pid=""; pg_started=""
pgb_pidfiles=(); pgb_pids=()
keep="${PG_BENCH_KEEP:-}"
stop_pgbouncer() { # not our children (pgbouncer -d): by the pids in their pidfiles
  local f p
  for f in "${pgb_pidfiles[@]}"; do
    [ -s "$f" ] || continue
    p=$(cat "$f")
    kill "$p" 2>/dev/null || continue
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
  done
}
cleanup() {
  local rc=$?
  set +e
  if [ "$rc" != 0 ]; then
    echo "pg_bench: FAILED (exit $rc); log tails:" >&2
    for f in "$dir/cluster.log" "$dir/agent/agent.log" "$dir/pg/server.log" "$dir"/pgbouncer/pgbouncer*.log; do
      [ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }
    done
  fi
  stop_pgbouncer
  stop_pg_stack
  if [ -n "$keep" ]; then echo "pg_bench: kept $dir" >&2; else rm -rf "$dir"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

results="$dir/results"
echo "ncpu=$(nproc)" >"$results"
put() { echo "$1=$2" >>"$results"; }
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"

# --- the cluster: auth + proxy (+ the agent, with PG_BENCH_TOPOLOGY=single) ----------------------
step "cluster ($TOPOLOGY)"
pg_port=$(free_port)
databases=$(pg_databases)
start_cluster "$databases"

# --- PostgreSQL with a certificate from the db CA ---------------------------------------------
start_postgres $((SESSIONS + 100))

# --- the agent, a user, pc ------------------------------------------------------------------
start_agent "$databases"

step "user and pc db login"
login_user pg1-quiet --roles=access --db-users=bench --db-names=bench
pg_env_files pg1 pg1-quiet
echo "stack up: proxy $proxy_addr, PostgreSQL 127.0.0.1:$pg_port, cluster pid $cluster_pid, agent pid $agent_pid" >&2

# --- the reference path: PgBouncer, mutual TLS 1.3 on both sides, no audit ---------------------
paths=(direct proxy quiet)
if [ -n "$pgbouncer_bin" ]; then
  step "reference: PgBouncer, 2 processes on one port (so_reuseport)"
  pb="$dir/pgbouncer"
  mkdir -p "$pb"
  # server.crt (CN and SAN 127.0.0.1) and server.cas (the db CA, which signed the client
  # certificate) face the clients; direct.{crt,key,cas} face PostgreSQL, as on the direct path.
  cp "$dir/certs/server.crt" "$dir/certs/server.key" "$dir/certs/server.cas" \
     "$dir/certs/direct.crt" "$dir/certs/direct.key" "$dir/certs/direct.cas" "$pb/"
  printf '"bench" ""\n' >"$pb/users.txt"
  pgb_port=$(free_port)
  for i in 1 2; do
    cat >"$pb/pgbouncer$i.ini" <<EOF
[databases]
bench = host=127.0.0.1 port=$pg_port dbname=bench
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $pgb_port
so_reuseport = 1
unix_socket_dir =
auth_type = cert
auth_file = $pb/users.txt
pool_mode = session
max_client_conn = 200
default_pool_size = 20
client_tls_sslmode = verify-full
client_tls_cert_file = $pb/server.crt
client_tls_key_file = $pb/server.key
client_tls_ca_file = $pb/server.cas
client_tls_protocols = tlsv1.3
server_tls_sslmode = verify-full
server_tls_ca_file = $pb/direct.cas
server_tls_cert_file = $pb/direct.crt
server_tls_key_file = $pb/direct.key
server_tls_protocols = tlsv1.3
logfile = $pb/pgbouncer$i.log
pidfile = $pb/pgbouncer$i.pid
EOF
  done
  chown -R postgres:postgres "$pb"
  chmod 600 "$pb"/*.key
  for i in 1 2; do
    pgb_pidfiles+=("$pb/pgbouncer$i.pid")
    runuser -u postgres -- "$pgbouncer_bin" -d "$pb/pgbouncer$i.ini" >"$pb/start$i.out" 2>&1 \
      || { cat "$pb/start$i.out" >&2; die "pgbouncer $i did not start"; }
    for _ in $(seq 50); do [ -s "$pb/pgbouncer$i.pid" ] && break; sleep 0.1; done
    [ -s "$pb/pgbouncer$i.pid" ] || die "pgbouncer $i wrote no pidfile"
    pgb_pids+=("$(cat "$pb/pgbouncer$i.pid")")
  done
  sed "s/PGPORT=$pg_port /PGPORT=$pgb_port /" "$dir/direct.env" >"$dir/pgbouncer.env"
  grep -q "PGPORT=$pgb_port " "$dir/pgbouncer.env" || die "could not write pgbouncer.env"
  pg_check_path pgbouncer
  put pgbouncer_version "$("$pgbouncer_bin" --version | awk 'NR == 1 {print $2}')"
  paths+=(pgbouncer)
  echo "PgBouncer up: 127.0.0.1:$pgb_port, pids ${pgb_pids[*]}" >&2
fi

# --- measurements -----------------------------------------------------------------------------
pg_ticks() { python3 "$helper" tree "$(head -1 "$dir/pg/data/postmaster.pid")"; }
hz=$(getconf CLK_TCK)
pgbouncer_ticks() { # both PgBouncer processes together (0 without the reference path)
  local t=0 p
  for p in "${pgb_pids[@]}"; do t=$((t + $(ticks "$p"))); done
  echo "$t"
}
pgb() { # path, label, pgbench args... -> prints tps; full output in $dir/pgbench.<label>.<path>
  local path=$1 label=$2; shift 2
  (. "$dir/$path.env"; /usr/bin/time -f '%U %S' -o "$dir/time.$label.$path" "$pgbin/pgbench" -n "$@") >"$dir/pgbench.$label.$path" 2>&1 \
    || { cat "$dir/pgbench.$label.$path" >&2; die "pgbench $label on the $path path failed"; }
  awk '/^tps = /{print $3; exit}' "$dir/pgbench.$label.$path"
}

conn_args() { # path -> helper connection arguments
  (. "$dir/$1.env"
   if [ -n "${PGSERVICE:-}" ]; then # the proxy path: host/port/user/db/files from the service file
     python3 - "$PGSERVICEFILE" "$PGSERVICE" <<'PY'
import configparser, sys
c = configparser.ConfigParser(); c.read(sys.argv[1]); s = c[sys.argv[2]]
print(f"--host={s['host']} --port={s['port']} --user={s['user']} --dbname={s['dbname']} --ca={s['sslrootcert']} --cert={s['sslcert']} --key={s['sslkey']}")
PY
   else
     echo "--host=$PGHOST --port=$PGPORT --user=$PGUSER --dbname=$PGDATABASE --ca=$PGSSLROOTCERT --cert=$PGSSLCERT --key=$PGSSLKEY"
   fi)
}
# First, on fresh processes: memory per idle session is read from RSS, which the allocator keeps
# high after load, so measuring after the throughput runs would understate it.
step "$SESSIONS idle sessions through one proxy and one agent"
check="runuser -u postgres -- $pgbin/psql -X -A -t -h $dir/pg -p $pg_port -U postgres -c \"select count(*) from pg_stat_activity where usename = 'bench'\""
args=$(conn_args proxy)
# shellcheck disable=SC2086
python3 "$helper" idle --n "$SESSIONS" --pids "$cluster_pid,$agent_pid" --names cluster,agent \
  --check "$check" $args >>"$results" || die "opening $SESSIONS idle sessions failed"
grep '^idle_' "$results" | sed 's/^/   /' >&2

step "warm-up (5 s each path)"
for path in "${paths[@]}"; do pgb "$path" warmup -S -M prepared -T 5 -c 8 -j 2 >/dev/null; done

# name clients threads mode script: `simple` compares the audit load (1 event per query
# instead of 3); `tpcb` is pgbench's default TPC-B-like script (7 statements per transaction,
# updates), run on the paths that compare auditing on (proxy) and off (quiet).
for run in "c1 1 1 prepared select-only" "c8 8 2 prepared select-only" "simple 8 2 simple select-only" "tpcb 8 2 simple tpcb-like"; do
  read -r name c j mode script <<<"$run"
  for path in "${paths[@]}"; do
    [ "$name" = tpcb ] && [ "$path" = pgbouncer ] && continue
    step "pgbench -b $script -M $mode -T $T -c $c -j $j, $path"
    sleep 2 # let the previous run's audit events drain
    e0=$(wc -l <"$dir/cluster/log/events.log")
    c0=$(ticks "$cluster_pid"); a0=$(ticks "$agent_pid"); p0=$(pg_ticks); b0=$(pgbouncer_ticks); t0=$(date +%s.%N)
    perf_pids=()
    if [ -n "${PG_BENCH_PERF:-}" ] && [ "$path" = proxy ] && [ "$name" = c8 ]; then
      keep=1
      events=context-switches,raw_syscalls:sys_enter,syscalls:sys_enter_read,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_recvfrom,syscalls:sys_enter_sendto,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_futex,syscalls:sys_enter_fdatasync,syscalls:sys_enter_getrandom
      for who in cluster agent; do
        pid_var="${who}_pid"
        perf stat -x, -o "$dir/perfstat.$who" -e "$events" -p "${!pid_var}" -- sleep "$T" >/dev/null 2>&1 &
        perf_pids+=($!)
        perf record -F 499 --call-graph dwarf,16384 -o "$dir/perf.$who.data" -p "${!pid_var}" -- sleep "$T" >/dev/null 2>&1 &
        perf_pids+=($!)
      done
    fi
    tps=$(pgb "$path" "$name" -b "$script" -M "$mode" -T "$T" -c "$c" -j "$j")
    sleep 0.3 # PostgreSQL reaps the ended backends (their CPU moves to the postmaster's cutime)
    c1=$(ticks "$cluster_pid"); a1=$(ticks "$agent_pid"); p1=$(pg_ticks); b1=$(pgbouncer_ticks); t1=$(date +%s.%N)
    e1=$(wc -l <"$dir/cluster/log/events.log")
    for p in "${perf_pids[@]}"; do wait "$p"; done
    txns=$(awk '/number of transactions actually processed/{split($NF,a,"/"); print a[1]; exit}' "$dir/pgbench.$name.$path")
    put "tps_${path}_$name" "$tps"
    put "events_${path}_$name" "$(python3 -c "print(f'{($e1-$e0)/$txns:.2f}')")"
    if [ "$c" = 8 ]; then # CPU µs per transaction of each party, and CPUs kept busy
      suffix=""; [ "$name" != c8 ] && suffix="_$name"
      read -r bu bs <"$dir/time.$name.$path"
      python3 - "$results" "$path$suffix" "$hz" "$txns" "$((c1-c0))" "$((a1-a0))" "$((p1-p0))" "$bu" "$bs" "$t0" "$t1" "$((b1-b0))" <<'PY'
import sys
res, path, hz, txns = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
cl, ag, pg = (int(x) / hz for x in sys.argv[5:8])
pb = float(sys.argv[8]) + float(sys.argv[9])
wall = float(sys.argv[11]) - float(sys.argv[10])
bouncer = int(sys.argv[12]) / hz
with open(res, "a") as fh:
    for k, v in (("cluster", cl), ("agent", ag), ("postgres", pg), ("pgbench", pb),
                 ("pgbouncer", bouncer)):
        fh.write(f"cpu_{k}_{path}={v * 1e6 / txns}\n")
    fh.write(f"busy_{path}={(cl + ag + pg + pb + bouncer) / wall}\n")
PY
      if [ "$path" = pgbouncer ]; then # both processes should take connections (so_reuseport)
        per=""
        for p in "${pgb_pids[@]}"; do per="$per $(ticks "$p")"; done
        echo "   PgBouncer CPU ticks so far, per process:$per" >&2
      fi
    fi
    echo "   $tps TPS ($txns transactions, $((e1-e0)) audit events written by the end of the run)" >&2
  done
done

printf 'select 1;\n' >"$dir/select1.sql"
for path in "${paths[@]}"; do
  step "SELECT 1 latency, $LAT_N round trips on one connection, $path"
  args=$(conn_args "$path")
  # shellcheck disable=SC2086
  out=$(python3 "$helper" rtt --n "$LAT_N" $args)
  read -r p50 p99 n <<<"$out"
  put "lat_${path}_p50" "$p50"; put "lat_${path}_p99" "$p99"
  echo "   p50 ${p50} µs, p99 ${p99} µs (n=$n)" >&2
  pgb "$path" lat -f "$dir/select1.sql" -t "$LAT_N" -c 1 >/dev/null
  put "latavg_$path" "$(awk '/^latency average/{print $4; exit}' "$dir/pgbench.lat.$path")"
done

for path in direct proxy; do
  step "connection set-up, $CONN_N sequential connects (TLS + startup + SELECT 1), $path"
  args=$(conn_args "$path")
  # shellcheck disable=SC2086
  out=$(python3 "$helper" connect --n "$CONN_N" $args)
  read -r p50 p99 n tls startup <<<"$out"
  put "conn_${path}_p50" "$p50"; put "conn_${path}_p99" "$p99"
  put "conn_${path}_tls" "$tls"; put "conn_${path}_startup" "$startup"
  echo "   p50 ${p50} ms, p99 ${p99} ms (n=$n); p50 TLS ${tls} ms, startup ${startup} ms" >&2
  step "pgbench -C -S -T 10 -c 1, $path"
  tps=$(pgb "$path" C -C -S -T 10 -c 1)
  put "tpsC_$path" "$tps"
  put "connavg_$path" "$(awk '/average connection time/{print $5; exit}' "$dir/pgbench.C.$path")"
  echo "   $tps TPS, $(grep 'average connection time' "$dir/pgbench.C.$path")" >&2
done


kill -0 "$cluster_pid" && kill -0 "$agent_pid" || die "a Portcullis process died during the run"
for p in "${pgb_pids[@]}"; do kill -0 "$p" || die "a PgBouncer process died during the run"; done

# --- summary ------------------------------------------------------------------------------------
echo
echo "PostgreSQL through Portcullis ($TOPOLOGY topology) vs direct mutual TLS, $(nproc) CPUs, $(date -u +%F), pgbench $("$pgbin/pgbench" --version | awk '{print $3}')"
python3 "$helper" summary "$results"
if [[ " ${paths[*]} " == *" pgbouncer "* ]]; then
  echo
  echo "reference: PgBouncer $(awk -F= '$1 == "pgbouncer_version" {print $2}' "$results"), TLS both sides, no audit (2 processes, so_reuseport, session pooling, same run)"
  python3 "$helper" reference "$results"
fi
echo
echo "audit on (pg1) vs off (pg1-quiet: audit_queries: false), same agent and PostgreSQL, same run"
python3 "$helper" audit "$results"
if [ -n "${PG_BENCH_PERF:-}" ] && [ -f "$dir/perf.cluster.data" ]; then
  echo
  echo "PG_BENCH_PERF: the proxied 8-client run was profiled (so its figures above are not representative)."
  txns=$(awk '/number of transactions actually processed/{print $NF; exit}' "$dir/pgbench.c8.proxy")
  for who in cluster agent; do
    echo "$who, per transaction (perf stat over ${T} s, $txns transactions):"
    awk -F, -v n="$txns" '$1 ~ /^[0-9]+$/ {printf "  %-34s %8.2f\n", $3, $1 / n}' "$dir/perfstat.$who"
    perf report -i "$dir/perf.$who.data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null \
      | grep -v '^#' | grep -v '^$' | head -60 >"$dir/perf.$who.flat.txt" || true
    perf report -i "$dir/perf.$who.data" --children --sort symbol --stdio -g none 2>/dev/null \
      | grep -v '^#' | grep -v '^$' | head -300 >"$dir/perf.$who.inclusive.txt" || true
  done
  echo "profiles: $dir/perf.{cluster,agent}.{data,flat.txt,inclusive.txt}"
fi
