#!/usr/bin/env bash
# A new hire's first command after cloning: checks (and where a script may, installs) the
# prerequisites, creates .env from .env.example, starts the local PostgreSQL 17 + pgvector
# container, creates and migrates both local databases, fills them, and checks the result with
# `cargo xtask db-verify`.
#
#   scripts/onboard.sh [--yes]
#
# The local databases are filled from Railway (`cargo xtask db-pull`) when RAILWAY_DB_URL is set
# (environment or .env); otherwise from the embedded default: a sandbox "remote" on the same local
# server (databases sandbox_remote_db and sandbox_remote_ai_db), seeded by `cargo xtask seed`, so
# that the whole workflow runs without any credentials.
#
# Idempotent: a second run changes nothing that is already right. An existing .env is kept, an
# existing container and databases are reused, a seeded sandbox is not seeded again, and the pull
# is skipped when db-verify already finds the local databases equal to their source.
#
# --yes: replace local databases that hold data different from the source without asking
# (otherwise the xtask asks on a terminal, and without a terminal this script stops and says so).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

IMAGE=pgvector/pgvector:pg17
SANDBOX_DB=sandbox_remote_db
SANDBOX_AI_DB=sandbox_remote_ai_db

yes=0
for arg in "$@"; do
  case $arg in
    --yes) yes=1 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "onboard: unknown argument '$arg' (see scripts/onboard.sh --help)" >&2
      exit 2
      ;;
  esac
done

step() { printf '\n==> %s\n' "$*" >&2; }
say() { printf 'onboard: %s\n' "$*" >&2; }
die() {
  printf 'onboard: error: %s\n' "$*" >&2
  exit 1
}
# Masks the password of any URL in the text (for messages; the xtask masks its own output).
mask() { sed -E 's#(://[^:/@?]*):[^@/]*@#\1:****@#g' <<<"$1"; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/onboard.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

is_root() { [[ $(id -u) -eq 0 ]]; }
# Runs a command as root: directly, through sudo (which may ask for a password), or not at all.
as_root() {
  if is_root; then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    die "this step needs root and sudo is missing: run as root: $*"
  fi
}

# ---------------------------------------------------------------------------------------------
step "1/5 prerequisites"
missing=()

# Docker engine (not installed by a script: it is a system service with its own setup).
if ! command -v docker >/dev/null; then
  missing+=("Docker Engine: not installed. Debian/Ubuntu: \`sudo apt-get install docker.io\`, or Docker's own packages: https://docs.docker.com/engine/install/ (macOS/Windows: Docker Desktop)")
elif ! server=$(docker version --format '{{.Server.Version}}' 2>"$tmp/docker.err"); then
  if grep -qi 'permission denied' "$tmp/docker.err"; then
    missing+=("Docker Engine: $(id -un) may not use it (permission denied on the Docker socket): \`sudo usermod -aG docker $(id -un)\`, then log out and back in")
  else
    missing+=("Docker Engine: installed but not answering ($(tail -n 1 "$tmp/docker.err")): start it with \`sudo systemctl start docker\` (or start Docker Desktop)")
  fi
else
  say "docker engine $server"
fi

# Compose: the v2 plugin (`docker compose`) or the v1 program (`docker-compose`).
compose=()
if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null && docker-compose version >/dev/null 2>&1; then
  compose=(docker-compose)
elif command -v docker >/dev/null; then
  missing+=("Docker Compose: neither \`docker compose\` nor \`docker-compose\` works. Debian/Ubuntu: \`sudo apt-get install docker-compose\` (or docker-compose-plugin from Docker's packages)")
fi
((${#compose[@]})) && say "compose: ${compose[*]} ($("${compose[@]}" version --short 2>/dev/null || echo '?'))"

# Rust: not installed by a script (rustup changes the shell's profile).
if ! command -v cargo >/dev/null; then
  missing+=("cargo (Rust): not found. Install it with rustup: \`curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh\` (https://rustup.rs), then open a new shell")
else
  say "$(cargo --version)"
  # The pre-commit hook runs `cargo fmt --check`.
  if ! cargo fmt --version >/dev/null 2>&1; then
    if command -v rustup >/dev/null; then
      say "installing rustfmt (rustup component add rustfmt)"
      rustup component add rustfmt >/dev/null 2>&1 || missing+=("rustfmt: \`rustup component add rustfmt\` failed; run it by hand")
    else
      missing+=("rustfmt: not found (the pre-commit hook runs cargo fmt): install it with your Rust toolchain, e.g. \`rustup component add rustfmt\`")
    fi
  fi
fi

# What the xtask needs to build on Linux (native-tls links OpenSSL), installed from Debian's
# packages when apt-get is there.
if [[ $(uname -s) == Linux ]]; then
  packages=()
  command -v cc >/dev/null || packages+=(gcc libc6-dev)
  command -v pkg-config >/dev/null || packages+=(pkg-config)
  pkg-config --exists openssl 2>/dev/null || packages+=(libssl-dev)
  if ((${#packages[@]})); then
    if command -v apt-get >/dev/null; then
      say "installing ${packages[*]} (apt-get; needed to build the xtask)"
      as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${packages[@]}" >/dev/null
    else
      missing+=("build tools for the xtask: ${packages[*]} (a C compiler, pkg-config, the OpenSSL headers): install them with your package manager")
    fi
  fi
fi

# uv runs Alembic for the xtask: installed from PyPI as scripts/test.sh does, else with pipx.
if ! command -v uv >/dev/null; then
  say "installing uv from PyPI"
  user_flag=()
  is_root || user_flag=(--user)
  if python3 -m pip install --quiet --disable-pip-version-check ${user_flag[@]+"${user_flag[@]}"} uv >/dev/null 2>&1 ||
    { command -v pipx >/dev/null && pipx install uv >/dev/null 2>&1; }; then
    hash -r
    scripts_dir=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null || true)
    user_base=$(python3 -m site --user-base 2>/dev/null || true)
    export PATH="$PATH:${scripts_dir:-}:${user_base:+$user_base/bin}:$HOME/.local/bin"
    if command -v pyenv >/dev/null; then pyenv rehash || true; fi
  fi
  if command -v uv >/dev/null; then
    say "installed $(uv --version); make sure $(dirname "$(command -v uv)") is on your PATH"
  else
    missing+=("uv: could not be installed from here. Install it with \`pipx install uv\` (Debian: \`sudo apt-get install pipx\`) or \`curl -LsSf https://astral.sh/uv/install.sh | sh\` (https://docs.astral.sh/uv/)")
  fi
else
  say "$(uv --version)"
fi

# The git hooks (scripts/git-hooks: pre-commit), through core.hooksPath.
if ! command -v git >/dev/null; then
  missing+=("git: not found: \`sudo apt-get install git\`")
elif ! git rev-parse --git-dir >/dev/null 2>&1; then
  say "not a git checkout: the git hooks are not installed"
elif ! scripts/install-hooks.sh; then
  say "warning: the git hooks were not installed (see above); the rest goes on"
fi

if ((${#missing[@]})); then
  printf 'onboard: missing prerequisites (nothing else was changed):\n' >&2
  printf '  - %s\n' "${missing[@]}" >&2
  exit 1
fi

# The image: present, else pulled, else built from Debian's packages (where no registry answers).
if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  say "image $IMAGE is present"
else
  say "image $IMAGE is missing: pulling it"
  if timeout 300 docker pull -q "$IMAGE" >/dev/null 2>"$tmp/pull.err"; then
    say "pulled $IMAGE"
  else
    say "cannot pull $IMAGE ($(tail -n 1 "$tmp/pull.err")): building it from Debian's packages with scripts/pg-image/build.sh (needs root and debootstrap; about a minute)"
    as_root scripts/pg-image/build.sh ||
      die "scripts/pg-image/build.sh failed (see above): without the image there is no local database"
  fi
fi

say "building the xtask (the first time takes a few minutes)"
cargo build --quiet --locked --package xtask ||
  die "cargo could not build the xtask (see above); on Debian it needs gcc, pkg-config and libssl-dev"
say "resolving backend/'s Python environment (uv sync)"
uv sync --locked --quiet --directory backend ||
  die "\`uv sync --locked --directory backend\` failed (see above): Alembic cannot run without it"

# ---------------------------------------------------------------------------------------------
step "2/5 .env"
if [[ -e .env ]]; then
  say ".env exists: kept as it is"
  env_state="kept as it was"
else
  cp .env.example .env
  say "created .env from .env.example"
  env_state="created from .env.example"
fi

# A setting as the xtask sees it: the environment first, then the last KEY=value line of .env.
setting() {
  local key=$1 line value
  if [[ -n ${!key:-} ]]; then
    printf '%s' "${!key}"
    return
  fi
  line=$(grep -E "^[[:space:]]*(export[[:space:]]+)?${key}[[:space:]]*=" .env | tail -n 1 || true)
  value=${line#*=}
  value=${value#"${value%%[![:space:]]*}"}
  value=${value%"${value##*[![:space:]]}"}
  if [[ $value == \"*\" || $value == \'*\' ]]; then
    value=${value:1:${#value}-2}
  fi
  printf '%s' "$value"
}

local_url=$(setting DATABASE_URL)
local_ai_url=$(setting AI_DATABASE_URL)
[[ -n $local_url && -n $local_ai_url ]] ||
  die "DATABASE_URL and AI_DATABASE_URL must be set (in .env; see .env.example for the defaults)"
remote_url=$(setting RAILWAY_DB_URL)
remote_ai_url=$(setting RAILWAY_AI_DB_URL)

# The same URL with another database name (the query string, e.g. sslmode, is kept).
with_db() {
  local url=$1 db=$2 base query
  base=${url%%\?*}
  query=${url#"$base"}
  printf '%s/%s%s' "${base%/*}" "$db" "$query"
}
# host:port of a URL (for the port check and messages).
host_port() {
  local rest=${1#*://}
  rest=${rest##*@}
  rest=${rest%%/*}
  rest=${rest%%\?*}
  printf '%s' "$rest"
}

if [[ -n $remote_url ]]; then
  source_kind=railway
  case $(host_port "$remote_url") in
    *.railway.internal*)
      die "RAILWAY_DB_URL names $(host_port "$remote_url"): that is Railway's private DATABASE_URL, reachable only inside Railway. Use the service's DATABASE_PUBLIC_URL (host *.proxy.rlwy.net) in .env"
      ;;
  esac
  [[ -n $remote_ai_url ]] ||
    die "RAILWAY_DB_URL is set but RAILWAY_AI_DB_URL is not: both databases are pulled; set RAILWAY_AI_DB_URL in .env to the AI Postgres service's DATABASE_PUBLIC_URL"
  case $(host_port "$remote_ai_url") in
    *.railway.internal*)
      die "RAILWAY_AI_DB_URL names $(host_port "$remote_ai_url"): that is Railway's private DATABASE_URL; use the service's DATABASE_PUBLIC_URL (host *.proxy.rlwy.net)"
      ;;
  esac
  say "source: Railway ($(mask "$remote_url"), $(mask "$remote_ai_url"))"
else
  source_kind=sandbox
  remote_url=$(with_db "$local_url" "$SANDBOX_DB")
  remote_ai_url=$(with_db "$local_url" "$SANDBOX_AI_DB")
  say "source: the embedded default, a sandbox \"remote\" on the local server ($SANDBOX_DB, $SANDBOX_AI_DB); set RAILWAY_DB_URL and RAILWAY_AI_DB_URL in .env to pull from Railway instead"
fi

# ---------------------------------------------------------------------------------------------
step "3/5 local databases"
container_id() { (cd backend && "${compose[@]}" ps -q postgres 2>/dev/null) || true; }
running() { [[ -n $1 && $(docker inspect -f '{{.State.Running}}' "$1" 2>/dev/null) == true ]]; }

cid=$(container_id)
local_port=$(host_port "$local_url")
local_port=${local_port##*:}
[[ $local_port =~ ^[0-9]+$ ]] || local_port=5432
if ! running "$cid" && (exec 3<>"/dev/tcp/127.0.0.1/$local_port") 2>/dev/null; then
  die "port $local_port is already taken by another program, so the local container cannot publish it. A PostgreSQL installed on the host? (\`sudo systemctl stop postgresql\`). \`ss -ltnp 'sport = :$local_port'\` shows who holds it"
fi

say "starting the local container (cd backend && ${compose[*]} up -d postgres)"
(cd backend && "${compose[@]}" up -d postgres) >"$tmp/compose.log" 2>&1 || {
  cat "$tmp/compose.log" >&2
  die "\`${compose[*]} up -d postgres\` failed in backend/ (output above)"
}
cid=$(container_id)
[[ -n $cid ]] || die "Compose started no postgres container (backend/docker-compose.yml)"
name=$(docker inspect -f '{{.Name}}' "$cid")
name=${name#/}

# Ready means: accepting TCP connections inside the container (the image's first-start setup runs
# a socket-only server first, which a plain pg_isready would already call ready).
say "waiting for PostgreSQL in $name"
for ((i = 0; ; i++)); do
  if ! running "$cid"; then
    docker logs --tail 20 "$cid" >"$tmp/pg.log" 2>&1 || true
    cat "$tmp/pg.log" >&2
    if grep -q 'incompatible with server' "$tmp/pg.log"; then
      die "the volume of $name holds a data directory from another PostgreSQL major version (15?), which PostgreSQL 17 cannot open. Save anything you need from it with the old version first; then \`cd backend && ${compose[*]} down -v\` (deletes the volume) and run this script again"
    fi
    die "the container $name stopped (its log is above)"
  fi
  docker exec "$cid" pg_isready -q -h 127.0.0.1 -p 5432 >/dev/null 2>&1 && break
  ((i < 90)) || die "PostgreSQL in $name is not ready after 90 s: see \`docker logs $name\`"
  sleep 1
done
say "container $name is running ($IMAGE, localhost:$local_port)"

say "cargo xtask db-init: create the local databases and the vector extension when missing, migrate both to head"
cargo xtask db-init

# ---------------------------------------------------------------------------------------------
step "4/5 fill the local databases"

# Helpers that pass URLs through the environment of one command only, never its argv.
xtask_from_source() {
  RAILWAY_DB_URL="$remote_url" RAILWAY_AI_DB_URL="$remote_ai_url" cargo xtask "$@"
}
xtask_on_sandbox() {
  DATABASE_URL="$remote_url" AI_DATABASE_URL="$remote_ai_url" cargo xtask "$@"
}

# db-verify --json (source vs local) digested into one line per database:
#   <database> <equal|different|error> <source rows> <local rows> <local revision> <local url>
# Rows leave out alembic_version. Exit 0 whatever db-verify found, unless it could not run.
compare() {
  local rc=0
  xtask_from_source db-verify --json >"$tmp/verify.json" 2>"$tmp/verify.err" || rc=$?
  if [[ $rc -ne 0 && $rc -ne 3 && ! -s $tmp/verify.json ]]; then
    cat "$tmp/verify.err" >&2
    die "cargo xtask db-verify could not run (exit $rc; see above)"
  fi
  uv run --quiet --directory backend python -c '
import json, sys
report = json.load(open(sys.argv[1]))
for d in report["databases"]:
    if d.get("error"):
        print(d["database"], "error", 0, 0, "-", d["right"]["url"])
        continue
    tables = [t for t in d["tables"] if t["table"] != "alembic_version"]
    rows = lambda side: sum(t.get(side + "_rows") or 0 for t in tables)
    revision = ",".join(d["alembic"]["right"]["revisions"]) or "none"
    print(d["database"], "equal" if d["equal"] else "different",
          rows("left"), rows("right"), revision, d["right"]["url"])
' "$tmp/verify.json" >"$tmp/verify.txt"
  if grep -q ' error ' "$tmp/verify.txt"; then
    cat "$tmp/verify.err" >&2
    die "cargo xtask db-verify could not compare the databases (see above)"
  fi
}
all_equal() { ! grep -qv ' equal ' "$tmp/verify.txt"; }
# Source rows of one database (core|ai), and local rows of all.
source_rows() { awk -v db="$1" '$1 == db { print $3 }' "$tmp/verify.txt"; }
local_rows() { awk '{ n += $4 } END { print n + 0 }' "$tmp/verify.txt"; }

if [[ $source_kind == sandbox ]]; then
  say "the sandbox: cargo xtask db-init on $SANDBOX_DB and $SANDBOX_AI_DB"
  xtask_on_sandbox db-init
  compare
  core_rows=$(source_rows core)
  ai_rows=$(source_rows ai)
  if [[ $core_rows -gt 0 && $ai_rows -gt 0 ]]; then
    say "the sandbox already holds data (core $core_rows rows, ai $ai_rows rows): not seeded again"
  else
    if [[ $core_rows -gt 0 || $ai_rows -gt 0 ]]; then
      # An earlier run stopped between the two seeds (each one is a transaction). The sandbox is
      # this script's own stand-in, so it is recreated rather than half-reused.
      say "the sandbox is half seeded (core $core_rows rows, ai $ai_rows rows; an interrupted run?): recreating it"
      for db in "$SANDBOX_DB" "$SANDBOX_AI_DB"; do
        docker exec "$cid" dropdb -U "$(sed -E 's#^[^:]*://([^:@/]*).*#\1#' <<<"$local_url")" \
          --if-exists --force "$db"
      done
      xtask_on_sandbox db-init
    fi
    say "cargo xtask seed --target local (on the sandbox): the production shape, deterministic"
    xtask_on_sandbox seed --target local
    compare
  fi
else
  compare
fi

if all_equal; then
  # Skipping is what keeps a second run fast and harmless: a pull would rebuild both databases
  # (and fail while the app holds a session on them) only to arrive where they already are.
  say "the local databases already equal the source: no pull needed"
  pulled="no (already equal)"
else
  pull_flags=()
  if [[ $(local_rows) -eq 0 ]]; then
    # Freshly migrated and empty: nothing to confirm, nothing worth a backup.
    pull_flags=(--yes --no-backup)
  else
    sed 's/^error: /onboard: /' "$tmp/verify.err" >&2
    if ((yes)); then
      pull_flags=(--yes)
    elif [[ ! -t 0 ]]; then
      die "the local databases hold data that differs from the source (above), and there is no terminal to ask on. To replace them with the source's (a backup goes to backups/ first), run \`scripts/onboard.sh --yes\`"
    else
      say "the local databases hold data that differs from the source (above): db-pull asks before replacing each one (a backup goes to backups/ first)"
    fi
  fi
  say "cargo xtask db-pull ${pull_flags[*]:-} (source -> local, both databases)"
  xtask_from_source db-pull ${pull_flags[@]+"${pull_flags[@]}"}
  pulled=yes
fi

# ---------------------------------------------------------------------------------------------
step "5/5 check"
rc=0
xtask_from_source db-verify || rc=$?
if [[ $rc -ne 0 ]]; then
  die "cargo xtask db-verify found the local databases different from the source (exit $rc; see above)"
fi
compare

hooks=$(git config --get core.hooksPath 2>/dev/null || true)
{
  echo
  echo "onboard: done. What is where:"
  printf '  %-13s %s\n' "container" "$name ($IMAGE), localhost:$local_port; start/stop: cd backend && ${compose[*]} up -d / stop"
  while read -r db _ _ rows revision url; do
    printf '  %-13s %s  %s rows, alembic %s\n' "local $db" "$url" "$rows" "$revision"
  done <"$tmp/verify.txt"
  if [[ $source_kind == sandbox ]]; then
    printf '  %-13s %s\n' "source" "sandbox \"remote\" $SANDBOX_DB + $SANDBOX_AI_DB on the same server (seeded by cargo xtask seed); set RAILWAY_DB_URL and RAILWAY_AI_DB_URL in .env to use Railway"
  else
    printf '  %-13s %s\n' "source" "Railway: $(mask "$remote_url"), $(mask "$remote_ai_url")"
  fi
  printf '  %-13s %s\n' "pulled" "$pulled; db-verify: equal"
  printf '  %-13s %s\n' ".env" "$env_state"
  printf '  %-13s %s\n' "git hooks" "${hooks:-not installed}"
  printf '  %-13s %s\n' "backups/logs" "backups/ and logs/ (git-ignored)"
  printf '  %-13s %s\n' "next" "cargo xtask doctor; cargo xtask --help; scripts/test.sh"
} >&2
