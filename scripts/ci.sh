#!/usr/bin/env bash
# What CI runs (.ci/run, .github/workflows/ci.yml), on a clean checkout:
#   1. the whole test suite (scripts/test.sh: installs what is missing, builds the image, tests);
#   2. on a throwaway PostgreSQL 17 + pgvector server: the pre-commit hook's checks (one head per
#      Alembic config, scripts load, the data policy classifies every column of the migrations
#      (built there from scratch, no cache), cargo fmt, clippy);
#   3. on the same server, two database pairs migrated from scratch by
#      `cargo xtask db-init`, then `cargo xtask alembic-status` (both pairs at head) and
#      `cargo xtask db-verify --checksums` (the pairs equal). The server's password is made up and
#      needs percent-encoding in a URL; the container is removed on every exit.
#
#   scripts/ci.sh [cargo test arguments...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

IMAGE=${PG_IMAGE:-pgvector/pgvector:pg17}
say() { printf 'ci: %s\n' "$*" >&2; }
section() { printf '\n==> ci: %s\n' "$*" >&2; }

section "test suite (scripts/test.sh)"
scripts/test.sh "$@"

section "the reliability matrix (docs/reliability.md) matches the cases the suite recorded"
scripts/reliability-matrix.py --check

section "a throwaway PostgreSQL server"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/xtask-ci.XXXXXX")
container="xtask-ci-$$-$RANDOM"
cleanup() {
  docker rm -f -v "$container" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A port nobody answers on, below the ephemeral range (containers share the host network: one URL
# for host and container).
# shellcheck source=scripts/free-port.sh
source scripts/free-port.sh
port=$(free_port) || { say "no free port found"; exit 1; }

# Characters that must be percent-encoded in a URL; the value reaches docker through the
# environment (-e NAME without a value), never through an argument.
export POSTGRES_PASSWORD="ci p@ss:w/rd%?#&$RANDOM"
urlencode() {
  local s=$1 out='' c i
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    case $c in
      [A-Za-z0-9._~-]) out+=$c ;;
      *) printf -v c '%%%02X' "'$c" && out+=$c ;;
    esac
  done
  printf '%s' "$out"
}
server="postgresql://ci:$(urlencode "$POSTGRES_PASSWORD")@127.0.0.1:$port"

docker run -d --rm --name "$container" --label xtask-ci=1 --network host \
  -e POSTGRES_USER=ci -e POSTGRES_PASSWORD -e POSTGRES_DB=postgres \
  "$IMAGE" postgres -c port="$port" -c listen_addresses=127.0.0.1 -c fsync=off >/dev/null
unset POSTGRES_PASSWORD
for ((i = 0; ; i++)); do
  docker exec "$container" pg_isready -q -h 127.0.0.1 -p "$port" 2>/dev/null && break
  if ((i >= 60)) || [[ $(docker inspect -f '{{.State.Running}}' "$container" 2>/dev/null) != true ]]; then
    docker logs --tail 30 "$container" >&2 || true
    say "the throwaway PostgreSQL did not start on port $port"
    exit 1
  fi
  sleep 1
done
say "throwaway server $container on 127.0.0.1:$port"

# Every setting comes from this environment: a developer's .env plays no part (--env-file of an
# empty file), and logs or backups stay out of the checkout.
: >"$tmp/empty.env"
export POSTGRES_CONTAINER="$container" XTASK_PG_VIA=docker \
  XTASK_LOG_DIR="$tmp/logs" XTASK_BACKUP_DIR="$tmp/backups"
xtask() {
  DATABASE_URL="$server/$1" AI_DATABASE_URL="$server/$2" \
    RAILWAY_DB_URL="$server/$3" RAILWAY_AI_DB_URL="$server/$4" \
    cargo xtask --env-file "$tmp/empty.env" "${@:5}"
}

section "pre-commit checks (scripts/git-hooks/pre-commit), the data policy's columns built on $container"
DATABASE_URL="$server/ci_policy" AI_DATABASE_URL="$server/ci_policy_ai" \
  XTASK_CACHE_DIR="$tmp/cache" scripts/git-hooks/pre-commit

section "alembic-status and db-verify on the throwaway server, migrated from scratch"
say "cargo xtask db-init: pair A (ci_a, ci_a_ai) and pair B (ci_b, ci_b_ai), from scratch"
xtask ci_a ci_a_ai ci_b ci_b_ai db-init
xtask ci_b ci_b_ai ci_a ci_a_ai db-init

say "cargo xtask alembic-status (local = A, remote = B)"
xtask ci_a ci_a_ai ci_b ci_b_ai alembic-status

say "cargo xtask db-verify --checksums (remote B vs local A)"
xtask ci_a ci_a_ai ci_b ci_b_ai db-verify --checksums

say "all checks passed"
