#!/usr/bin/env bash
# A new hire's first command after cloning: checks (and where a script may, installs) the
# prerequisites, builds the xtask, and hands over to `cargo xtask onboard`, which creates .env
# from .env.example, starts the local PostgreSQL 17 + pgvector container, creates and migrates
# both local databases, fills them, and checks the result as `cargo xtask db-verify` does.
#
#   scripts/onboard.sh [--yes]
#
# The local databases are filled from Railway (as `cargo xtask db-pull` does) when RAILWAY_DB_URL
# is set (environment or .env); otherwise from the embedded default: a sandbox "remote" on the
# same local server (databases sandbox_remote_db and sandbox_remote_ai_db), seeded as
# `cargo xtask seed` does, so that the whole workflow runs without any credentials.
#
# Idempotent: a second run changes nothing that is already right. An existing .env is kept, an
# existing container and databases are reused, a seeded sandbox is not seeded again, and the pull
# is skipped when the local databases already equal their source.
#
# --yes: replace local databases that hold data different from the source without asking
# (otherwise db-pull asks on a terminal, and without a terminal onboarding stops and says so).
#
# This script does only what has to happen before cargo can build and run the xtask (Docker,
# Compose, Rust, the build packages, uv, the git hooks, the image); everything after that is
# decided in xtask/src/commands/onboard/.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

IMAGE=pgvector/pgvector:pg17

# Checked here, before anything is installed; handed on to `cargo xtask onboard` at the end.
for arg in "$@"; do
  case $arg in
    --yes) ;;
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
  # The pre-commit hook runs `cargo fmt --check` and `cargo clippy`.
  for component in rustfmt clippy; do
    subcommand=${component/rustfmt/fmt}
    cargo "$subcommand" --version >/dev/null 2>&1 && continue
    if command -v rustup >/dev/null; then
      say "installing $component (rustup component add $component)"
      rustup component add "$component" >/dev/null 2>&1 || missing+=("$component: \`rustup component add $component\` failed; run it by hand")
    else
      missing+=("$component: not found (the pre-commit hook runs cargo $subcommand): install it with your Rust toolchain, e.g. \`rustup component add $component\`")
    fi
  done
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
# Steps 2/5 to 5/5 (.env, the container and local databases, filling them, the check) are the
# xtask's. `exec` does not run the EXIT trap, so the scratch folder goes first.
rm -rf "$tmp"
trap - EXIT
exec cargo xtask onboard "$@"
