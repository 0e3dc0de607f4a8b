#!/usr/bin/env bash
# The README's test command: installs what the suite needs on a fresh Debian machine (PostgreSQL
# server binaries for host-mode clusters, debootstrap for the test image, OpenSSL headers, uv),
# builds the PostgreSQL 17 + pgvector test image when it is absent, then runs every test.
#
#   scripts/test.sh [cargo test arguments...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

packages=()
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || packages+=(postgresql-15 postgresql-client-15)
command -v debootstrap >/dev/null || packages+=(debootstrap)
command -v pkg-config >/dev/null || packages+=(pkg-config)
pkg-config --exists openssl 2>/dev/null || packages+=(libssl-dev)
command -v setpriv >/dev/null || packages+=(util-linux)
if ((${#packages[@]})); then
  echo "test.sh: installing ${packages[*]}" >&2
  # Only the binaries are wanted: no default cluster, no service started on port 5432.
  as_root mkdir -p /etc/postgresql-common
  echo "create_main_cluster = false" | as_root tee /etc/postgresql-common/createcluster.conf >/dev/null
  as_root apt-get update -q >/dev/null
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${packages[@]}" >/dev/null
fi

if ! command -v uv >/dev/null; then
  echo "test.sh: installing uv from PyPI" >&2
  python3 -m pip install --quiet --disable-pip-version-check uv
  hash -r
  command -v uv >/dev/null || export PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
  command -v pyenv >/dev/null && pyenv rehash || true
fi
uv --version >/dev/null

if docker version >/dev/null 2>&1; then
  scripts/pg-image/build.sh
  # Containers left behind by an interrupted run of this suite.
  stale=$(docker ps -aq --filter label=xtask-test=1)
  # -v: with their data volumes (the image declares one), or the disk fills up over many runs.
  [[ -z $stale ]] || docker rm -f -v $stale >/dev/null
elif [[ -n ${CI:-} ]]; then
  echo "test.sh: CI is set but the Docker engine does not answer; the Docker tests cannot be skipped in CI" >&2
  exit 1
fi

# Resolve backend/'s Python environment once, before tests run Alembic in parallel.
uv sync --locked --quiet --directory backend

# Cases recorded for the reliability matrix (docs/reliability.md) (scripts/reliability-matrix.py) by this run only.
rm -rf target/tmp/reliability
cargo test --workspace --locked "$@"
