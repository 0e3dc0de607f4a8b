# shellcheck shell=bash
# Sourced by scripts/bench.sh (issue 17): the peers a PostgreSQL engineer would pick instead of
# db-pull, on pgbench's own data, in the same run and on the same server: the bare
# `pg_dump | psql` pipe (full dump), pgcopydb (Debian's package), `pg_dump -Fd -jN` +
# `pg_restore -jN`, the data path's floor (pgbench_accounts through two docker exec streams and
# from a file in the container), db-pull --schema source (the release build, one job and N, and
# `cargo xtask` in the dev profile as users type it); then the xtask's cold build and
# `cargo xtask --help` warm.
# Every row is a whole command into a target that was just dropped (and, but for db-pull, created
# empty); each prints its seconds and its ratio to the bare pipe.
#
# Environment (besides bench.sh's):
#   BENCH_PGBENCH_SCALE  pgbench -i scale (default 20; 0 skips the peers)
#   BENCH_JOBS           the N of the parallel rows (default 2)
#   BENCH_BUILD          set to 0: skip the cold build row (several minutes on 2 cores)
#   BENCH_XTASK_BEFORE   an xtask binary of another revision: one more db-pull row, to compare
#                        the two in one run
#
# pgcopydb 0.10 (Debian bookworm) is built with PostgreSQL 15 and runs the pg_dump, pg_restore and
# psql of the first psql on PATH (or of $PG_CONFIG). Those of 15 cannot dump a 17 server, so it is
# given wrappers that run the container's own 17 tools through docker exec; the container mounts
# the work folder at the same path, so the files pgcopydb writes and reads are the same on both
# sides. Its URLs go through PGCOPYDB_SOURCE_PGURI / PGCOPYDB_TARGET_PGURI (never an argument).

PGB_SCALE=${BENCH_PGBENCH_SCALE:-20}
PGB_JOBS=${BENCH_JOBS:-2}
[[ $PGB_SCALE =~ ^[0-9]+$ ]] || die "BENCH_PGBENCH_SCALE=$PGB_SCALE is not a whole number"
[[ $PGB_JOBS =~ ^[1-9][0-9]*$ ]] || die "BENCH_JOBS=$PGB_JOBS is not a whole number >= 1"
PGB_SRC=bench_pgbench_src PGB_DST=bench_pgbench_dst
PEER_ROWS=(bare pgcopydb dir copy_exec copy_file pull pull_jn dev_pull before_pull cargo_pull build help)
declare -A PEER_LABEL=(
  [bare]='bare pipe: pg_dump | psql (full dump)'
  [pgcopydb]="pgcopydb clone --table-jobs $PGB_JOBS --index-jobs $PGB_JOBS"
  [dir]="pg_dump -Fd -j$PGB_JOBS + pg_restore -j$PGB_JOBS"
  [copy_exec]='floor: COPY pgbench_accounts through two docker exec streams'
  [copy_file]='floor: COPY pgbench_accounts from a file in the container'
  [pull]='db-pull --schema source (release build)'
  [pull_jn]="db-pull --schema source --jobs $PGB_JOBS (release build)"
  [dev_pull]='db-pull --schema source (dev build: target/debug/xtask)'
  [before_pull]='db-pull --schema source (BENCH_XTASK_BEFORE)'
  [cargo_pull]='cargo xtask db-pull --schema source (dev profile)'
  [build]='cold build: cargo build -p xtask (dev profile)'
  [help]='cargo xtask --help (warm)'
)
declare -A PT PNOTE

# pg17_wrappers DIR: psql, pg_dump, pg_restore, pg_dumpall, vacuumdb and pg_config in DIR that run
# the container's PostgreSQL 17 tools; the password reaches them through the environment only.
pg17_wrappers() {
  local dir=$1 tool
  mkdir -p "$dir"
  for tool in psql pg_dump pg_restore pg_dumpall vacuumdb; do
    printf '#!/bin/sh\nexec docker exec -i -e PGPASSWORD -e PGCONNECT_TIMEOUT %q %q "$@"\n' \
      "$container" "$tool" >"$dir/$tool"
  done
  printf '#!/bin/sh\necho %q\n' "$dir" >"$dir/pg_config"
  chmod +x "$dir"/*
}

# peer_target: the target dropped and created empty (not timed).
peer_target() {
  drop_db $PGB_DST
  psql_c postgres "CREATE DATABASE $PGB_DST" >/dev/null
}

# time_peer ROW COMMAND...: the command's wall time into PT[ROW], its output into ROW.log; then
# (not timed) the target's pgbench_accounts must hold every row of the source's.
time_peer() {
  local row=$1 log=$work/peer-$1.log t0 t1 rc
  shift
  settle
  t0=$(now)
  if "$@" >"$log" 2>&1; then rc=0; else rc=$?; fi
  t1=$(now)
  if ((rc != 0)); then
    FAILURES+=("${PEER_LABEL[$row]} on pgbench: exit $rc after $(secs "$t0" "$t1") s: $(tail -n 3 "$log" | tr '\n' ' ')")
    PNOTE[$row]="FAILED (exit $rc)"
    failed=1
    return 0
  fi
  PT[$row]=$(secs "$t0" "$t1")
  local got
  got=$(psql_c $PGB_DST "SELECT count(*) FROM pgbench_accounts" 2>/dev/null || echo none)
  if [[ $got != "$PGB_ROWS" ]]; then
    PNOTE[$row]="WRONG: pgbench_accounts $got of $PGB_ROWS rows"
    failed=1
  fi
}

bare_full_pipe() {
  dexec "$container" pg_dump --dbname="$(bare_url $PGB_SRC)" --no-owner --no-privileges |
    dexec -i "$container" psql --dbname="$(bare_url $PGB_DST)" -q --set ON_ERROR_STOP=on
}

dump_dir_restore() {
  dexec "$container" rm -rf /tmp/bench-pgbench.dir &&
    dexec "$container" pg_dump --dbname="$(bare_url $PGB_SRC)" -Fd -j"$PGB_JOBS" \
      --no-owner --no-privileges -f /tmp/bench-pgbench.dir &&
    dexec "$container" pg_restore --dbname="$(bare_url $PGB_DST)" -j"$PGB_JOBS" \
      --no-owner --no-privileges --exit-on-error /tmp/bench-pgbench.dir
}

# The data path's floor (not a peer): pgbench_accounts alone into a table without indexes or keys,
# through the two `docker exec` streams db-pull's rows cross (out of psql in the container, into
# psql in the container), and from a file inside the container (no stream at all).
floor_target() {
  peer_target
  psql_c $PGB_DST "CREATE TABLE pgbench_accounts (aid int NOT NULL, bid int, abalance int, filler char(84))" >/dev/null
}
copy_through_exec() {
  dexec "$container" psql --dbname="$(bare_url $PGB_SRC)" -qAtX -c 'COPY pgbench_accounts TO STDOUT' |
    dexec -i "$container" psql --dbname="$(bare_url $PGB_DST)" -qAtX --set ON_ERROR_STOP=on \
      -c 'COPY pgbench_accounts FROM STDIN'
}
copy_from_file() {
  psql_c $PGB_DST "COPY pgbench_accounts FROM '/tmp/bench-pgbench.copy'"
}

pgcopydb_clone() {
  rm -rf "$work/pgcopydb"
  PG_CONFIG=$work/pg17bin/pg_config PATH=$work/pg17bin:$PATH \
    PGCOPYDB_SOURCE_PGURI=$(url $PGB_SRC) PGCOPYDB_TARGET_PGURI=$(url $PGB_DST) \
    pgcopydb clone --table-jobs "$PGB_JOBS" --index-jobs "$PGB_JOBS" --dir "$work/pgcopydb"
}

# pgbench_pull XTASK_COMMAND... -- ARGS...: db-pull of the pgbench source into the (dropped)
# target with its own schema; Core only, no backup (there is nothing to back up). pgbench's tables
# are not the app's (the data policy does not classify them) and the peers copy raw: the callers
# pass --unmasked (but to a BENCH_XTASK_BEFORE that predates it).
pgbench_pull() {
  local cmd=()
  while [[ $1 != -- ]]; do cmd+=("$1"); shift; done
  shift
  drop_db $PGB_DST
  RAILWAY_DB_URL=$(url $PGB_SRC) DATABASE_URL=$(url $PGB_DST) \
    "${cmd[@]}" db-pull --core-only --schema source --no-backup --yes "$@" "${common[@]}"
}

bench_peers() {
  ((PGB_SCALE > 0)) || return 0
  command -v pgcopydb >/dev/null || {
    say "bench: installing pgcopydb"
    as_root apt-get update -q >/dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q pgcopydb >/dev/null
  }
  pg17_wrappers "$work/pg17bin"
  say "bench: pgbench -i -s $PGB_SCALE --foreign-keys (not timed)"
  drop_db $PGB_SRC
  psql_c postgres "CREATE DATABASE $PGB_SRC" >/dev/null
  dexec "$container" pgbench -i -q -s "$PGB_SCALE" --foreign-keys "$(bare_url $PGB_SRC)" \
    >"$work/pgbench-init.log" 2>&1 || { tail -n 20 "$work/pgbench-init.log" >&2; die "pgbench -i failed"; }
  PGB_ROWS=$(psql_c $PGB_SRC "SELECT count(*) FROM pgbench_accounts")
  say "bench: pgbench at scale $PGB_SCALE: $PGB_ROWS pgbench_accounts rows; the peers, one run each"

  peer_target && time_peer bare bare_full_pipe
  peer_target && time_peer pgcopydb pgcopydb_clone
  peer_target && time_peer dir dump_dir_restore
  floor_target && time_peer copy_exec copy_through_exec
  psql_c $PGB_SRC "COPY pgbench_accounts TO '/tmp/bench-pgbench.copy'" >/dev/null
  floor_target && time_peer copy_file copy_from_file
  dexec "$container" rm -rf /tmp/bench-pgbench.copy /tmp/bench-pgbench.dir
  time_peer pull pgbench_pull "$XTASK" -- --unmasked
  time_peer pull_jn pgbench_pull "$XTASK" -- --unmasked --jobs "$PGB_JOBS"
  # The dev build users run, warm (not timed), then the whole `cargo xtask` command.
  cargo build --quiet -p xtask
  time_peer dev_pull pgbench_pull "$root/target/debug/xtask" -- --unmasked
  if [[ -n ${BENCH_XTASK_BEFORE:-} ]]; then
    local before_raw=() before_help
    # Read whole first: with pipefail, `grep -q` closing the pipe early would fail the help.
    before_help=$("$BENCH_XTASK_BEFORE" db-pull --help 2>/dev/null || true)
    if grep -q -- '--unmasked' <<<"$before_help"; then before_raw=(--unmasked); fi
    time_peer before_pull pgbench_pull "$BENCH_XTASK_BEFORE" -- "${before_raw[@]}"
  else
    PNOTE[before_pull]='n/a (BENCH_XTASK_BEFORE unset)'
  fi
  time_peer cargo_pull pgbench_pull cargo xtask -- --unmasked
  drop_db $PGB_DST

  if [[ ${BENCH_BUILD:-1} != 0 ]]; then
    say "bench: the xtask's cold build (dev profile, a new target folder)"
    local t0
    t0=$(now)
    if CARGO_TARGET_DIR=$work/cold-target cargo build --quiet -p xtask >"$work/build.log" 2>&1; then
      PT[build]=$(secs "$t0" "$(now)")
    else
      PNOTE[build]=FAILED
      FAILURES+=("cold build: $(tail -n 3 "$work/build.log" | tr '\n' ' ')")
    fi
    rm -rf "$work/cold-target"
  else
    PNOTE[build]=skipped
  fi
  cargo xtask --help >/dev/null 2>&1 # warm
  local t0
  t0=$(now)
  cargo xtask --help >/dev/null 2>&1 && PT[help]=$(secs "$t0" "$(now)")
}

print_peers() {
  ((PGB_SCALE > 0)) || return 0
  echo
  echo "Peers on pgbench -i -s $PGB_SCALE --foreign-keys ($PGB_ROWS pgbench_accounts rows), one run each,"
  echo "whole commands, each target just dropped (db-pull) or dropped and created empty:"
  echo
  printf '| %-62s | %7s | %11s |\n' command 'wall s' '/ bare pipe'
  printf '|%s|%s:|%s:|\n' "$(dashes 64)" "$(dashes 8)" "$(dashes 12)"
  local r
  for r in "${PEER_ROWS[@]}"; do
    printf '| %-62s | %7s | %11s |\n' "${PEER_LABEL[$r]}${PNOTE[$r]:+ ${PNOTE[$r]}}" \
      "${PT[$r]:--}" "$(ratio "${PT[$r]:-}" "${PT[bare]:-}")"
  done
  echo "(pgcopydb $(pgcopydb --version 2>/dev/null | awk '/^pgcopydb version/ {print $3}') with the container's PostgreSQL 17 tools; the build rows' ratio is only for scale)"
}
