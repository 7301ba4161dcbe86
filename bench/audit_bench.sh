#!/usr/bin/env bash
# What auditing every query costs: pgbench TPS through Portcullis with every query audited
# (database entry pg1) against the same path with `audit_queries: false` (pg1-quiet: the same
# agent and PostgreSQL; session start and end are still recorded). Issue target: at most 5 %
# fewer TPS.
#
# On a 2-vCPU machine one run's TPS moves by several per cent with whatever else the kernel
# does, so the two paths run in alternating order (on, off, off, on, ...) for ROUNDS rounds and
# the table compares medians; it also prints the Portcullis processes' CPU per transaction
# (the steadier figure), the audit events written per transaction, and the whole machine's
# busy CPU per transaction and idle share (what the kernel spends on writeback, journaling and
# interrupts for the log file is in neither process).
#
# Workloads (8 clients, 2 pgbench threads): `select` = -S -M prepared (Bind + Execute: two
# events per transaction: statements.bind, and statements.execute with the query's text); `simple`
# = -S -M simple (one db.session.query); `tpcb` = pgbench's default TPC-B-like script, simple
# protocol (seven queries, seven events, per transaction).
#
# Usage: sudo bench/audit_bench.sh   (PostgreSQL runs as `postgres` via runuser)
# Needs release binaries (cargo build --release --workspace; PORTCULLIS_BIN_DIR or
# CARGO_TARGET_DIR pick them up). Knobs: AUDIT_BENCH_T (10 s per run), AUDIT_BENCH_ROUNDS (5),
# AUDIT_BENCH_WORKLOADS ("select simple tpcb"), AUDIT_BENCH_CLIENTS (pgbench clients, 8), AUDIT_BENCH_TOPOLOGY (single: one process,
# the default deployment; remote: an agent process over the tunnel), AUDIT_BENCH_FSYNC (auth's audit log fsync policy: every_batch, the default;
# interval; never), AUDIT_BENCH_KEEP=1 (keep
# the temp dir), AUDIT_BENCH_RATE=N (pgbench -R N: a fixed load below saturation, so the
# machine µs/txn columns show what auditing costs without the extra queueing a saturated
# 2-CPU machine adds), AUDIT_BENCH_PERF=1 (perf record the cluster during the first round of each
# workload, both paths; reports kept in the temp dir; AUDIT_BENCH_PERF=callers records call
# graphs too, at a lower rate, for `perf report -g caller`; AUDIT_BENCH_PERF=system records every
# process and the kernel, for `perf report --sort comm,dso`; AUDIT_BENCH_PERF_FREQ sets the sampling
# rate, 999 Hz by default), AUDIT_BENCH_CALLGRIND=1 (run the cluster under valgrind's callgrind and
# also report the instructions it executes per transaction: a count that does not move with
# the host's noise, though it leaves out the kernel and cache effects; slow: use small
# AUDIT_BENCH_RATE-free runs of a few seconds, e.g. AUDIT_BENCH_T=20 AUDIT_BENCH_ROUNDS=2).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
T="${AUDIT_BENCH_T:-10}"
CLIENTS="${AUDIT_BENCH_CLIENTS:-8}"
ROUNDS="${AUDIT_BENCH_ROUNDS:-5}"
WORKLOADS="${AUDIT_BENCH_WORKLOADS:-select simple tpcb}"
TOPOLOGY="${AUDIT_BENCH_TOPOLOGY:-single}"
AUDIT_FSYNC="${AUDIT_BENCH_FSYNC:-every_batch}"
case "$TOPOLOGY" in remote|single) ;; *) echo "AUDIT_BENCH_TOPOLOGY must be remote or single" >&2; exit 2 ;; esac
bin="${PORTCULLIS_BIN_DIR:-${CARGO_TARGET_DIR:-$repo/target}/release}"
pgbin=/usr/lib/postgresql/15/bin

die() { echo "audit_bench: $*" >&2; exit 1; }
for b in portcullis pcctl pc; do
  [ -x "$bin/$b" ] || die "$bin/$b not found: cargo build --release --workspace first (or set PORTCULLIS_BIN_DIR)"
done
for b in initdb pg_ctl pgbench psql; do [ -x "$pgbin/$b" ] || die "$pgbin/$b missing (apt-get install postgresql)"; done
[ "$(id -u)" = 0 ] || die "run as root (PostgreSQL is started as the postgres user with runuser)"
if [ -n "${AUDIT_BENCH_PERF:-}" ]; then command -v perf >/dev/null || die "AUDIT_BENCH_PERF needs perf (apt-get install linux-perf)"; fi

dir=$(mktemp -d /tmp/audit-bench.XXXXXX)
chmod 755 "$dir"
cluster_pid=""; agent_pid=""; pg_started=""
keep="${AUDIT_BENCH_KEEP:-}"
cleanup() {
  local rc=$?
  set +e
  if [ "$rc" != 0 ]; then
    echo "audit_bench: FAILED (exit $rc); log tails:" >&2
    for f in "$dir/cluster.log" "$dir/agent/agent.log" "$dir/pg/server.log"; do
      [ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }
    done
  fi
  stop_pg_stack
  if [ -n "$keep" ]; then echo "audit_bench: kept $dir" >&2; else rm -rf "$dir"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"

if [ -n "${AUDIT_BENCH_CALLGRIND:-}" ]; then
  command -v callgrind_control >/dev/null || die "AUDIT_BENCH_CALLGRIND needs valgrind (apt-get install valgrind)"
  [ "$TOPOLOGY" = single ] || die "AUDIT_BENCH_CALLGRIND counts the cluster process: use the single topology"
  export PORTCULLIS_WRAP="valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=$dir/callgrind.out"
  export START_WAIT=3000
fi
step "cluster ($TOPOLOGY)"
pg_port=$(free_port)
databases=$(pg_databases)
start_cluster "$databases"
start_postgres 200
start_agent "$databases"
step "user and pc db login"
login_user pg1-quiet --roles=access --db-users=bench --db-names=bench
pg_env_files pg1 pg1-quiet

# Every process of the Portcullis side: the cluster, and with TOPOLOGY=remote the agent.
portcullis_ticks() { echo $(($(ticks "$cluster_pid") + $(ticks "$agent_pid"))); }
# The part of it spent in the kernel (system calls, page faults, the disk writes they start).
portcullis_sys_ticks() { awk '{s+=$15} END {print s}' "/proc/$cluster_pid/stat" "/proc/$agent_pid/stat"; }
events() { wc -l <"$dir/cluster/log/events.log"; }
hz=$(getconf CLK_TCK)
results="$dir/results"
: >"$results"
# Busy, idle and stolen jiffies of the whole machine (/proc/stat: idle + iowait count as
# idle; steal is time the hypervisor gave another guest, which is neither).
machine() { awk '/^cpu /{print $2+$3+$4+$7+$8, $5+$6, $9; exit}' /proc/stat; }
# Bytes written to the machine's disks so far (whole devices; loop and RAM disks left out):
# what the log, its journal and any writeback of the spool cost the disk.
disk_bytes() {
  local f s=0
  for f in /sys/block/*/stat; do
    case "$f" in /sys/block/loop*|/sys/block/ram*|/sys/block/zram*) continue ;; esac
    s=$((s + $(awk '{print $7}' "$f")))
  done
  echo $((s * 512))
}
# run WORKLOAD PATH ROUND: one pgbench run; appends "workload path tps cpu_us_per_txn
# events_per_txn machine_busy_us_per_txn machine_idle_share".
run() {
  local w=$1 path=$2 round=$3 args out c0 c1 e0 e1 txns tps
  case "$w" in
    select) args=(-S -M prepared) ;;
    simple) args=(-S -M simple) ;;
    tpcb) args=(-M simple) ;;
    *) die "unknown workload $w (select, simple, tpcb)" ;;
  esac
  sleep 1 # the previous run's events reach the log
  e0=$(events); c0=$(portcullis_ticks); k0=$(portcullis_sys_ticks); read -r m0 i0 s0 < <(machine); d0=$(disk_bytes)
  local perf_pid=""
  if [ -n "${AUDIT_BENCH_PERF:-}" ] && [ "$round" = 1 ]; then
    keep=1
    local how=(-F "${AUDIT_BENCH_PERF_FREQ:-999}")
    [ "$AUDIT_BENCH_PERF" = callers ] && how=(-F 199 --call-graph dwarf,16384)
    local whom=(-p "$cluster_pid,$agent_pid")
    [ "$AUDIT_BENCH_PERF" = system ] && whom=(-a)
    perf record "${how[@]}" -o "$dir/perf.$w.$path.data" "${whom[@]}" -- sleep "$T" >/dev/null 2>&1 &
    perf_pid=$!
    perf record -e sched:sched_switch -g -o "$dir/sched.$w.$path.data" -p "$cluster_pid" -- sleep 3 >/dev/null 2>&1 &
    perf stat -x, -o "$dir/perfstat.$w.$path" -e context-switches,cpu-migrations,page-faults,raw_syscalls:sys_enter,syscalls:sys_enter_futex,syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync,syscalls:sys_enter_write -p "$cluster_pid" -- sleep "$T" >/dev/null 2>&1 &
  fi
  out="$dir/pgbench.$w.$path.$round"
  [ -n "${AUDIT_BENCH_RATE:-}" ] && args+=(-R "$AUDIT_BENCH_RATE")
  if [ -n "${AUDIT_BENCH_CALLGRIND:-}" ]; then
    callgrind_control -z "$cluster_pid" >/dev/null && callgrind_control -i on "$cluster_pid" >/dev/null
  fi
  (. "$dir/$path.env"; "$pgbin/pgbench" -n "${args[@]}" -T "$T" -c "$CLIENTS" -j 2) >"$out" 2>&1 \
    || { cat "$out" >&2; die "pgbench $w on the $path path failed"; }
  c1=$(portcullis_ticks); k1=$(portcullis_sys_ticks); read -r m1 i1 s1 < <(machine)
  [ -n "$perf_pid" ] && wait "$perf_pid"
  sleep 1
  d1=$(disk_bytes)
  e1=$(events)
  local ir=""
  if [ -n "${AUDIT_BENCH_CALLGRIND:-}" ]; then
    # Instructions since the zeroing, shipping and storing included (the second after the
    # run, while the events reach the log).
    callgrind_control -i off "$cluster_pid" >/dev/null
    rm -f "$dir"/callgrind.out*
    callgrind_control -d "$cluster_pid" >/dev/null
    ir=$(cat "$dir"/callgrind.out* 2>/dev/null | awk '/^totals:/{t+=$2} /^summary:/{s+=$2} END {print (t ? t : s) + 0}')
    # Kept for callgrind_annotate (per function).
    cat "$dir"/callgrind.out* >"$dir/callgrind.$w.$path.$round" 2>/dev/null || true
  fi
  tps=$(awk '/^tps = /{print $3; exit}' "$out")
  txns=$(awk '/number of transactions actually processed/{split($NF,a,"/"); print a[1]; exit}' "$out")
  python3 -c "import sys; w,p,tps,t,c,e,hz,m,i,d,k,st,ir=sys.argv[1:]; t=int(t); hz=int(hz); m=int(m); i=int(i); st=int(st); print(w, p, tps, f'{int(c)/hz*1e6/t:.1f}', f'{int(e)/t:.2f}', f'{m/hz*1e6/t:.1f}', f'{i/(m+i):.3f}', f'{int(d)/t:.0f}', f'{int(k)/hz*1e6/t:.1f}', f'{st/(m+i+st):.3f}', *([f'{int(ir)/t:.0f}'] if ir else []))" \
    "$w" "$path" "$tps" "$txns" "$((c1 - c0))" "$((e1 - e0))" "$hz" "$((m1 - m0))" "$((i1 - i0))" "$((d1 - d0))" "$((k1 - k0))" "$((s1 - s0))" "$ir" >>"$results"
  echo "   $w $path round $round: $tps TPS" >&2
}

step "warm-up"
for path in proxy quiet; do run select "$path" 0; done
: >"$results"
for w in $WORKLOADS; do
  for round in $(seq "$ROUNDS"); do
    step "$w, round $round of $ROUNDS"
    # ABBA order, so neither path always runs first.
    if [ $((round % 2)) = 1 ]; then order="proxy quiet"; else order="quiet proxy"; fi
    for path in $order; do run "$w" "$path" "$round"; done
  done
done
kill -0 "$cluster_pid" && kill -0 "$agent_pid" || die "a Portcullis process died during the run"

echo
echo "Auditing every query (pg1) vs audit_queries: false (pg1-quiet), $TOPOLOGY topology, $(nproc) CPUs, $(date -u +%F), audit fsync $AUDIT_FSYNC, ${ROUNDS} alternating rounds of ${T} s, $CLIENTS clients; medians, then the paired rounds' mean"
python3 - "$results" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
print(f"{'workload':<8} {'TPS on':>9} {'TPS off':>9} {'drop':>7} {'(min..max)':>15} {'µs/txn on':>10} {'off':>7} {'events/txn':>11} {'machine µs/txn on':>18} {'off':>7} {'idle on':>8} {'off':>6} {'disk B/txn on':>14} {'off':>5} {'kernel µs/txn on':>17} {'off':>5}")
for w in dict.fromkeys(r[0] for r in rows):
    on = [r for r in rows if r[0] == w and r[1] == "proxy"]
    off = [r for r in rows if r[0] == w and r[1] == "quiet"]
    med = lambda rs, i: statistics.median(float(r[i]) for r in rs)
    drops = [1 - float(a[2]) / float(b[2]) for a, b in zip(on, off)]
    d = 1 - med(on, 2) / med(off, 2)
    print(f"{w:<8} {med(on, 2):>9.0f} {med(off, 2):>9.0f} {d * 100:>6.1f}% {min(drops) * 100:>6.1f}..{max(drops) * 100:<5.1f}% "
          f"{med(on, 3):>10.1f} {med(off, 3):>7.1f} {med(on, 4):>11.2f} {med(on, 5):>18.1f} {med(off, 5):>7.1f} "
          f"{med(on, 6) * 100:>7.1f}% {med(off, 6) * 100:>5.1f}% {med(on, 7):>14.0f} {med(off, 7):>5.0f} {med(on, 8):>17.1f} {med(off, 8):>5.1f}")
    if len(drops) > 1:
        # Rounds run in pairs (ABBA), so each pair's drop cancels what the machine did across
        # the pair; their mean and its standard error say how far the figure can be trusted
        # on a host whose speed drifts from round to round.
        mean, se = statistics.mean(drops), statistics.stdev(drops) / len(drops) ** 0.5
        print(f"{'':<8} paired rounds: mean drop {mean * 100:.1f} % ± {se * 100:.1f} (standard error; 95 % interval "
              f"{(mean - 1.96 * se) * 100:.1f}..{(mean + 1.96 * se) * 100:.1f} %), median {statistics.median(drops) * 100:.1f} %, "
              f"{len(drops)} pairs, sd {statistics.stdev(drops) * 100:.1f} % per pair")
        # On a shared host the hypervisor takes a varying share of the CPUs (steal), and a
        # saturated run's TPS moves with it: TPS per CPU actually available cancels that.
        fair = [1 - (float(a[2]) / (1 - float(a[9]))) / (float(b[2]) / (1 - float(b[9]))) for a, b in zip(on, off)]
        fm, fse = statistics.mean(fair), statistics.stdev(fair) / len(fair) ** 0.5
        print(f"{'':<8} per CPU not stolen (steal on {med(on, 9) * 100:.1f} %, off {med(off, 9) * 100:.1f} %): mean drop {fm * 100:.1f} % ± {fse * 100:.1f} "
              f"(95 % interval {(fm - 1.96 * fse) * 100:.1f}..{(fm + 1.96 * fse) * 100:.1f} %), sd {statistics.stdev(fair) * 100:.1f} % per pair")
    if all(len(r) > 10 for r in on + off):
        a, b = med(on, 10), med(off, 10)
        print(f"{'':<8} instructions per transaction in the cluster (callgrind): on {a:,.0f}, off {b:,.0f}, audit {a - b:+,.0f} ({(a / b - 1) * 100:+.1f} %)")
PY
if [ -n "${AUDIT_BENCH_PERF:-}" ]; then
  for f in "$dir"/perf.*.data; do
    perf report -i "$f" --no-children --sort dso,symbol --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -80 >"${f%.data}.flat.txt" || true
  done
  echo "profiles: $dir/perf.*.flat.txt"
fi
