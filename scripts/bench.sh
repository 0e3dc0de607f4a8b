#!/usr/bin/env bash
# Benchmark of the pull (issue 8): the runbook's `pg_dump --column-inserts | psql` pipeline, a bare
# `pg_dump | psql` COPY pipe, `cargo xtask db-pull` and `cargo xtask db-verify`, on one throwaway
# PostgreSQL 17 + pgvector server, in one run, at each scale. Not a timed test: it prints one table
# (wall time, ratio to the runbook, ratio to the bare pipe, the xtask's peak memory), the team's
# targets as measured, and where db-pull spends its time.
#
#   scripts/bench.sh
#
# Environment:
#   BENCH_SCALES             scales to run, in order (default "1 10"; empty: the peers only)
#   BENCH_RUNBOOK_MAX_SCALE  skip the runbook row above this scale (default: run it at every scale;
#                            by far the slowest row: 1-2 minutes per scale unit here)
#   XTASK_BIN                an xtask binary to use (default: `cargo build --release -p xtask`,
#                            then target/release/xtask)
#   BENCH_REPEAT             rounds of every row but the runbook's, whose median is reported
#                            (default 3; the runbook's pipeline runs once)
#   BENCH_KEEP               set: keep the work folder (every row's output, db-pull's logs)
#   BENCH_XTASK_BEFORE       another xtask binary (another revision's build) whose whole default pull
#                            (Core + AI) runs right after this one's in each round, and in the peers
#   BENCH_PGBENCH_SCALE, BENCH_JOBS, BENCH_BUILD: the peers on pgbench's data, after the scales
#                            (scripts/bench-peers.sh: pgcopydb, pg_dump -Fd -jN + pg_restore -jN,
#                            the bare pipe, db-pull, the xtask's cold build and `cargo xtask --help`)
#
# Needs Docker and the image pgvector/pgvector:pg17 (scripts/pg-image/build.sh builds it when
# missing), uv (for Alembic) and GNU time (installed with apt-get when missing). fsync stays on.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

IMAGE=pgvector/pgvector:pg17
SCALES=${BENCH_SCALES-1 10}
REPEAT=${BENCH_REPEAT:-3}
[[ $REPEAT =~ ^[1-9][0-9]*$ ]] || { echo "bench: BENCH_REPEAT=$REPEAT is not a whole number >= 1" >&2; exit 1; }
PG_USER=sigmasight
# A made-up password that needs percent-encoding in a URL. It reaches the server and the tools
# through the environment only (docker run/exec -e NAME, without a value), never as an argument.
PW='b3nch@p:w/d%'
PW_ENC='b3nch%40p%3Aw%2Fd%25'
# db-pull masks by the data policy by default: a made-up key for the bench's pulls (the
# environment only, as the password).
export XTASK_MASK_KEY=${XTASK_MASK_KEY:-bench-only-mask-key-0123456789ab}

say() { printf '%s\n' "$*" >&2; }
die() { say "bench: $*"; exit 1; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; } # start, end

# --- prerequisites -------------------------------------------------------------------------------
docker version >/dev/null 2>&1 || die "the Docker engine does not answer"
command -v uv >/dev/null || die "uv is missing (scripts/test.sh installs it)"
as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }
if [[ ! -x /usr/bin/time ]]; then
  say "bench: installing GNU time"
  as_root apt-get update -q >/dev/null
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q time >/dev/null
fi
docker image inspect "$IMAGE" >/dev/null 2>&1 || scripts/pg-image/build.sh

if [[ -n ${XTASK_BIN:-} ]]; then
  XTASK=$XTASK_BIN
else
  say "bench: cargo build --release -p xtask (not timed)"
  cargo build --release --quiet -p xtask
  XTASK=$root/target/release/xtask
fi
[[ -x $XTASK ]] || die "no xtask binary at $XTASK"
uv sync --locked --quiet --directory backend

work=$(mktemp -d /tmp/xtask-bench.XXXXXX)
container=xtask-bench-$$
# shellcheck disable=SC2317 # called by the trap
cleanup() {
  docker rm -f -v "$container" >/dev/null 2>&1 || true
  if [[ -n ${BENCH_KEEP:-} ]]; then say "bench: output kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$work/backups" "$work/logs"
: >"$work/empty.env"
export XTASK_BACKUP_DIR=$work/backups XTASK_LOG_DIR=$work/logs

# --- the server ----------------------------------------------------------------------------------
# shellcheck source=scripts/free-port.sh
source "$root/scripts/free-port.sh"
port=$(free_port) || port=
[[ -n $port ]] || die "no free port found"

# The work folder is mounted at its own path: pgcopydb's files, written by the container's tools,
# are read at the same path by pgcopydb on the host (bench-peers.sh).
POSTGRES_PASSWORD=$PW docker run -d --rm --name "$container" --network host -v "$work:$work" \
  -e POSTGRES_USER="$PG_USER" -e POSTGRES_PASSWORD -e POSTGRES_DB=sigmasight_db \
  "$IMAGE" postgres -c "port=$port" >/dev/null
for i in $(seq 240); do
  docker exec "$container" pg_isready -q -h 127.0.0.1 -p "$port" 2>/dev/null && break
  ((i < 240)) || die "the server in $container did not come up"
  sleep 0.5
done

url() { printf 'postgresql://%s:%s@127.0.0.1:%s/%s' "$PG_USER" "$PW_ENC" "$port" "$1"; }
bare_url() { printf 'postgresql://%s@127.0.0.1:%s/%s' "$PG_USER" "$port" "$1"; }
# dexec ARGS...: `docker exec` with the password in the tool's environment, as the runbook's
# commands run (pg_dump and psql inside the container).
dexec() { PGPASSWORD=$PW docker exec -e PGPASSWORD "$@"; }
psql_c() { # database, sql
  dexec "$container" psql --dbname="$(bare_url "$1")" -qAtX --set ON_ERROR_STOP=on -c "$2"
}
drop_db() {
  dexec "$container" psql --dbname="$(bare_url postgres)" -qAtX --set ON_ERROR_STOP=on \
    -c 'SET client_min_messages = warning' -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)"
}

# settle: before each timed row (not timed), the server writes out what earlier rows (and the
# seeding) left dirty and autovacuum finishes with their tables, so that no row pays for another's
# background work. At most 60 s of waiting.
settle() {
  psql_c postgres 'CHECKPOINT' >/dev/null
  local i
  for i in $(seq 120); do
    [[ $(psql_c postgres "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'") == 0 ]] && return 0
    sleep 0.5
  done
}

SRC=bench_src_db SRC_AI=bench_src_ai_db DST=bench_dst_db DST_AI=bench_dst_ai_db
# The xtask reads its URLs from the environment (a flag would put the password on a command line).
export RAILWAY_DB_URL RAILWAY_AI_DB_URL DATABASE_URL AI_DATABASE_URL
RAILWAY_DB_URL=$(url $SRC) RAILWAY_AI_DB_URL=$(url $SRC_AI)
DATABASE_URL=$(url $DST) AI_DATABASE_URL=$(url $DST_AI)
common=(--env-file "$work/empty.env" --via docker --container "$container")

# What the runbook's pipeline needs to get through at all into a migrated target (see the notes at
# the end): alembic_version's row is already there, and users <-> portfolios is a foreign-key cycle.
PIPE_FIXES=(--exclude-table-data=public.alembic_version --disable-triggers)

# --- measuring -----------------------------------------------------------------------------------
# Results, keyed "SCALE:ROW" (ROW: one of ROWS below): T holds each round's wall time (a list),
# RSS_* the largest over the rounds. CUR is the scale being measured.
declare -A T RSS_OWN RSS_TREE NOTE CORE_ROWS PREP
FAILURES=()
CUR=
failed=0

max() { if (($1 > $2)); then echo "$1"; else echo "$2"; fi; }
# median TIMES...: the middle value (the mean of the two middle ones for an even count).
median() {
  printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END {
    if (NR % 2) printf "%.2f", v[(NR + 1) / 2]; else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

fail_row() { # key, log, what failed, seconds
  failed=1
  NOTE[$1]="FAILED after $4 s"
  FAILURES+=("${LABEL[${1#*:}]} at scale $CUR: $3 after $4 s; the end of its output: $(tail -n 3 "$2" | tr '\n' ' ')")
  say "bench: ${1#*:} at scale $CUR: $3 after $4 s; the end of its output:"
  tail -n 20 "$2" >&2
}

# elapsed_lines START: each line of stdin with the seconds since START ($EPOCHREALTIME) in front.
elapsed_lines() {
  local start=${1/./} line us
  while IFS= read -r line; do
    us=$((${EPOCHREALTIME/./} - start))
    printf '%4d.%02ds  %s\n' $((us / 1000000)) $((us % 1000000 / 10000)) "$line"
  done
}

# sample_hwm TIME_PID FILE: keeps in FILE the peak RSS (VmHWM, kB) of the xtask that /usr/bin/time
# (TIME_PID) runs, read every 50 ms until TIME_PID ends.
sample_hwm() {
  local tpid=$1 out=$2 xpid='' hwm=0 k v xname
  xname=$(basename "$XTASK")
  echo 0 >"$out"
  while kill -0 "$tpid" 2>/dev/null; do
    if [[ -z $xpid ]]; then
      read -r xpid _ 2>/dev/null <"/proc/$tpid/task/$tpid/children" || true
    fi
    if [[ -n $xpid ]] && [[ $(cat "/proc/$xpid/comm" 2>/dev/null) == "$xname" ]]; then
      while read -r k v _; do
        if [[ $k == VmHWM: ]] && ((v > hwm)); then hwm=$v && echo "$hwm" >"$out"; fi
      done 2>/dev/null <"/proc/$xpid/status" || true
    fi
    sleep 0.05
  done
}

# run_xtask ROW ARGS...: the release binary's wall time, its peak RSS (the xtask process itself,
# sampled) and GNU time's max RSS (the xtask and the children it waits for: docker exec clients,
# uv/Alembic). Its stderr goes to ROW-SCALE.log, each line with the seconds since the start.
run_xtask() {
  local key=$CUR:$1 log=$work/$1-$CUR.log
  shift
  local t0 t1 tpid spid hpid rc
  rm -f "$work/stderr.fifo" && mkfifo "$work/stderr.fifo"
  settle
  t0=$EPOCHREALTIME
  elapsed_lines "$t0" <"$work/stderr.fifo" >"$log" &
  spid=$!
  /usr/bin/time -f %M -o "$work/maxrss" "$XTASK" "$@" "${common[@]}" \
    >"$log.out" 2>"$work/stderr.fifo" &
  tpid=$!
  sample_hwm "$tpid" "$work/hwm" &
  hpid=$!
  if wait "$tpid"; then rc=0; else rc=$?; fi
  t1=$(now)
  wait "$spid" "$hpid" || true
  if ((rc != 0)); then fail_row "$key" "$log" "exit $rc" "$(secs "$t0" "$t1")"; return 0; fi
  T[$key]+=" $(secs "$t0" "$t1")"
  RSS_OWN[$key]=$(max "${RSS_OWN[$key]:-0}" "$(<"$work/hwm")")
  RSS_TREE[$key]=$(max "${RSS_TREE[$key]:-0}" "$(tail -n 1 "$work/maxrss")")
}

# prepare_target: an empty, freshly created and migrated Core target, as the runbook's steps 4-5
# (drop, create, upgrade head). Timed apart; not in the pipe rows.
prepare_target() {
  local t0
  t0=$(now)
  drop_db $DST
  "$XTASK" db-init --core-only "${common[@]}" >"$work/db-init.log" 2>&1 ||
    { tail -n 20 "$work/db-init.log" >&2; die "db-init of $DST failed"; }
  PREP[$CUR]=$(secs "$t0" "$(now)")
}

# run_pipe ROW PG_DUMP_FLAGS...: pg_dump of the source into psql on the target, both inside the
# container through docker exec, with pipefail and ON_ERROR_STOP; psql's output to a file.
run_pipe() {
  local key=$CUR:$1 log=$work/$1-$CUR.log
  shift
  local t0 t1 st src_rows dst_rows
  prepare_target
  settle
  t0=$(now)
  set +e
  dexec "$container" pg_dump --dbname="$(bare_url $SRC)" \
    --data-only --no-owner --no-privileges "$@" 2>"$log.pg_dump" |
    dexec -i "$container" psql --dbname="$(bare_url $DST)" --set ON_ERROR_STOP=on >"$log" 2>&1
  st=("${PIPESTATUS[@]}")
  set -e
  t1=$(now)
  if ((st[0] != 0 || st[1] != 0)); then
    fail_row "$key" "$log" "pg_dump exit ${st[0]}, psql exit ${st[1]}" "$(secs "$t0" "$t1")"
    return 0
  fi
  T[$key]+=" $(secs "$t0" "$t1")"
  # Not timed: the biggest table arrived whole.
  src_rows=$(psql_c $SRC "SELECT count(*) FROM market_data_cache")
  dst_rows=$(psql_c $DST "SELECT count(*) FROM market_data_cache")
  if [[ $src_rows != "$dst_rows" ]]; then
    failed=1
    NOTE[$key]="WRONG: market_data_cache $dst_rows of $src_rows rows"
  fi
}

ROWS=(runbook bare pull pull_all pull_before pull_nb pull_raw pull_j2 pull_full verify verify_cs)
XTASK_ROWS=(pull pull_all pull_before pull_nb pull_raw pull_j2 pull_full verify verify_cs)
declare -A LABEL=(
  [runbook]='runbook: pg_dump --column-inserts \| psql (Core)'
  [bare]='bare pipe: pg_dump \| psql, COPY (Core)'
  [pull]='db-pull --core-only (default, with its backup)'
  [pull_before]='the same, BENCH_XTASK_BEFORE'
  [pull_all]='db-pull (default: Core + AI, with backups)'
  [pull_nb]='db-pull --core-only --no-backup'
  [pull_raw]='db-pull --core-only --no-backup --unmasked'
  [pull_j2]='db-pull --core-only --no-backup --jobs 2'
  [pull_full]='db-pull --no-backup (Core + AI)'
  [verify]='db-verify --core-only'
  [verify_cs]='db-verify --core-only --checksums'
)

# --- one scale -----------------------------------------------------------------------------------
bench_scale() {
  local t0
  CUR=$1
  for db in $SRC $SRC_AI $DST $DST_AI; do drop_db "$db"; done

  say "bench: scale $CUR: seeding the source databases (not timed)"
  t0=$(now)
  DATABASE_URL=$RAILWAY_DB_URL AI_DATABASE_URL=$RAILWAY_AI_DB_URL \
    "$XTASK" seed --scale "$CUR" "${common[@]}" >"$work/seed.log" 2>&1 ||
    { tail -n 20 "$work/seed.log" >&2; die "seeding at scale $CUR failed"; }
  CORE_ROWS[$CUR]=$(psql_c $SRC "SELECT count(*) FROM market_data_cache")
  say "bench: scale $CUR: seeded in $(secs "$t0" "$(now)") s (market_data_cache: ${CORE_ROWS[$CUR]} rows)"

  if [[ -z ${BENCH_RUNBOOK_MAX_SCALE:-} ]] || ((CUR <= BENCH_RUNBOOK_MAX_SCALE)); then
    say "bench: scale $CUR: the runbook's pipeline (the slow one)"
    run_pipe runbook --column-inserts "${PIPE_FIXES[@]}"
  else
    NOTE[$CUR:runbook]="skipped"
  fi
  local round help
  # Read whole first: with pipefail, `grep -q` closing the pipe early would fail the help.
  help=$("$XTASK" db-pull --help 2>/dev/null || true)
  # The rounds run every row in turn, so that a slow spell of the machine hits all rows alike.
  for round in $(seq "$REPEAT"); do
    say "bench: scale $CUR, round $round of $REPEAT: the bare COPY pipe"
    run_pipe bare "${PIPE_FIXES[@]}"

    # The target now holds a full copy (from the bare pipe): the default pull backs it up first.
    say "bench: scale $CUR, round $round of $REPEAT: db-pull"
    run_xtask pull db-pull --core-only --yes
    run_xtask pull_all db-pull --yes
    if [[ -n ${BENCH_XTASK_BEFORE:-} ]]; then
      XTASK=$BENCH_XTASK_BEFORE run_xtask pull_before db-pull --yes
    else
      NOTE[$CUR:pull_before]='n/a (BENCH_XTASK_BEFORE unset)'
    fi
    run_xtask pull_nb db-pull --core-only --no-backup --yes
    if grep -q -- '--unmasked' <<<"$help"; then
      run_xtask pull_raw db-pull --core-only --no-backup --unmasked --yes
    else
      NOTE[$CUR:pull_raw]='n/a (not built)'
    fi
    if grep -q -- '--jobs' <<<"$help"; then
      run_xtask pull_j2 db-pull --core-only --no-backup --jobs 2 --yes
    else
      NOTE[$CUR:pull_j2]='n/a (not built)'
    fi
    run_xtask pull_full db-pull --no-backup --yes
    say "bench: scale $CUR, round $round of $REPEAT: db-verify"
    run_xtask verify db-verify --core-only
    run_xtask verify_cs db-verify --core-only --checksums
  done
  # Each row's median over the rounds.
  local r
  for r in "${ROWS[@]}"; do
    # shellcheck disable=SC2086 # the list of times splits on purpose
    [[ -z ${T[$CUR:$r]:-} ]] || T[$CUR:$r]=$(median ${T[$CUR:$r]})
  done
}

# shellcheck source=scripts/bench-peers.sh
source "$root/scripts/bench-peers.sh"

# --- the run -------------------------------------------------------------------------------------
docker_root=$(docker info --format '{{.DockerRootDir}}' 2>/dev/null || echo /)
rev=$(git rev-parse --short HEAD 2>/dev/null || echo '?')
git diff --quiet HEAD -- xtask 2>/dev/null || rev+=' + uncommitted changes'
header=$(
  echo "xtask benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), xtask at $rev"
  echo "machine: $(nproc) CPUs ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/^MemTotal/ {printf "%.1f GB", $2 / 1048576}' /proc/meminfo) RAM, Linux $(uname -r), Docker $(docker version --format '{{.Server.Version}}'), disk $(df -h --output=source,size,fstype "$docker_root" | awk 'NR == 2 {print $1 " (" $2 ", " $3 ")"}') under $docker_root"
  echo "server: PostgreSQL $(psql_c postgres 'SHOW server_version') ($IMAGE), one container on the host network, fsync on; source and target databases on that one server"
  echo "tools: pg_dump/psql inside the container through docker exec, as the runbook does; xtask: the release build, --via docker"
  echo "load average at the start (1, 5, 15 min): $(cut -d' ' -f1-3 /proc/loadavg)"
)
say "$header"

start=$(now)
for scale in $SCALES; do bench_scale "$scale"; done
bench_peers
end=$(now)

ratio() { # time, reference time
  if [[ -n $1 && -n $2 ]]; then awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; else echo -; fi
}
mb() { if [[ -n $1 ]]; then awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; else echo -; fi; }
row() { printf '| %5s | %-47s | %15s | %9s | %11s | %8s | %11s |\n' "$@"; }
dashes() { printf -- '-%.0s' $(seq "$1"); }

echo
echo "$header"
echo
row scale method 'wall s' '/ runbook' '/ bare pipe' 'xtask MB' 'w/ children'
printf '|%s:|%s|%s:|%s:|%s:|%s:|%s:|\n' "$(dashes 6)" "$(dashes 49)" "$(dashes 16)" "$(dashes 10)" \
  "$(dashes 12)" "$(dashes 9)" "$(dashes 12)"
for scale in $SCALES; do
  for r in "${ROWS[@]}"; do
    k=$scale:$r
    if [[ -z ${T[$k]:-} ]]; then
      row "$scale" "${LABEL[$r]}" "${NOTE[$k]:-?}" - - - -
    else
      row "$scale" "${LABEL[$r]}${NOTE[$k]:+ ${NOTE[$k]}}" "${T[$k]}" \
        "$(ratio "${T[$k]}" "${T[$scale:runbook]:-}")" "$(ratio "${T[$k]}" "${T[$scale:bare]:-}")" \
        "$(mb "${RSS_OWN[$k]:-}")" "$(mb "${RSS_TREE[$k]:-}")"
    fi
  done
done

# The team's targets. Each names a scale; the other scales are shown for reference.
verdict() { # value, operator, limit
  awk -v v="$1" -v op="$2" -v lim="$3" 'BEGIN {
    ok = (op == ">=" ? v >= lim : op == "<=" ? v <= lim : v < lim); print (ok ? "met" : "MISSED") }'
}
tag() { if [[ $scale == "$1" ]]; then printf '  [target at scale %s: %s]' "$1" "$2"; fi; }
echo
echo "Targets:"
for scale in $SCALES; do
  dp=${T[$scale:pull]:-} nb=${T[$scale:pull_nb]:-} rb=${T[$scale:runbook]:-} bp=${T[$scale:bare]:-} cs=${T[$scale:verify_cs]:-}
  peak=0 peak_tree=0
  for r in "${XTASK_ROWS[@]}"; do
    v=${RSS_OWN[$scale:$r]:-0}; if ((v > peak)); then peak=$v; fi
    v=${RSS_TREE[$scale:$r]:-0}; if ((v > peak_tree)); then peak_tree=$v; fi
  done
  if [[ -n $nb && -n $rb ]]; then
    x=$(ratio "$rb" "$nb")
    echo "  scale $scale: db-pull --core-only --no-backup is ${x}x faster than the runbook$(tag 1 ">= 8x, $(verdict "$x" '>=' 8)")"
  fi
  if [[ -n $dp && -n $bp ]]; then
    x=$(ratio "$dp" "$bp")
    echo "  scale $scale: db-pull --core-only (the whole command, with its backup) takes ${x}x the bare pipe's time$(tag 1 "<= 1.3x, $(verdict "$x" '<=' 1.3)")"
  fi
  if [[ -n $nb && -n $bp ]]; then
    echo "  scale $scale: db-pull --core-only --no-backup takes $(ratio "$nb" "$bp")x the bare pipe's time"
  fi
  if [[ -n $nb && -n $cs ]]; then
    x=$(ratio "$cs" "$nb")
    echo "  scale $scale: db-verify --core-only --checksums takes ${x} of that pull's time$(tag 1 "< 0.25, $(verdict "$x" '<' 0.25)")"
  fi
  echo "  scale $scale: xtask peak RSS $(mb "$peak") MB (the process itself; $(mb "$peak_tree") MB with its children)$(tag 10 "< 50 MB, $(verdict "$peak" '<' $((50 * 1024)))")"
done

print_peers

echo
echo "Where db-pull --core-only --no-backup spends its time: its stderr, seconds since its start (the"
echo "first line is printed after the preflight: the source's catalog and counts, tool versions,"
echo "alembic heads):"
for scale in $SCALES; do
  echo "  scale $scale:"
  if [[ -f $work/pull_nb-$scale.log ]]; then
    grep -vE '^ *[0-9]+\.[0-9]{2}s {3}' "$work/pull_nb-$scale.log" | sed 's/^/  /' || true
  fi
done

if ((${#FAILURES[@]})); then
  echo
  echo "Failed rows:"
  printf '  %s\n' "${FAILURES[@]}"
fi

prep=$(for s in $SCALES; do printf '%s s at scale %s, ' "${PREP[$s]:-?}" "$s"; done)
cat <<NOTES

Notes:
- One run of the script, on a shared and noisy machine: each row but the runbook's is the median
  of $REPEAT rounds (BENCH_REPEAT), the rounds running every row in turn; before each timed row the
  server is settled (CHECKPOINT, autovacuum idle; not timed). The numbers still move between runs.
- The runbook's pipeline cannot run as written into a migrated target: the dump's alembic_version
  row is a duplicate key (upgrade head wrote it), and users <-> portfolios is a foreign-key cycle
  that a data-only dump cannot order. Both pipe rows add what pg_dump offers for that:
  --exclude-table-data=public.alembic_version --disable-triggers (no foreign-key checks while
  loading: if anything, faster). Otherwise they are the runbook's commands.
- The pipe rows copy Core only, so they compare with the db-pull --core-only rows. Their target is
  dropped, created and migrated first (cargo xtask db-init: ${prep%, }), and that is not
  in their time. db-pull's time includes building its schema (alembic upgrade head in a staging
  database), reading and checking the source (alembic heads), and verifying the copy.
- The default db-pull rows back up their targets (each holds a full copy, from the rows before),
  beside the copy (the swap waits for the backup). BENCH_XTASK_BEFORE: another build of the
  xtask, whose whole default pull (Core + AI) runs right after this one's in every round.
- db-verify compares the source with the target that the last pull left (Core).
- xtask MB: peak RSS of the xtask process itself (VmHWM, sampled every 50 ms). w/ children: GNU
  time's %M, the largest of the xtask and the processes it waits for (uv/Alembic's Python, docker
  exec clients).
NOTES
echo "whole run: $(secs "$start" "$end") s (seeding included, build excluded); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
exit "$failed"
