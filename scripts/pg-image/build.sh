#!/usr/bin/env bash
# Builds the test bench's PostgreSQL 17 + pgvector image from Debian's packages and tags it
# pgvector/pgvector:pg17, so that backend/docker-compose.yml starts unchanged. No registry image can
# be pulled on the build machines; where the real image is already present, it is kept as is.
#
#   scripts/pg-image/build.sh [--force]
set -euo pipefail

IMAGE=${PG_IMAGE:-pgvector/pgvector:pg17}
SUITE=${PG_IMAGE_SUITE:-trixie}
MIRROR=${PG_IMAGE_MIRROR:-http://deb.debian.org/debian}
here=$(cd "$(dirname "$0")" && pwd)

if [[ "${1:-}" != --force ]] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "pg-image: $IMAGE is present"
  exit 0
fi

if ! command -v debootstrap >/dev/null; then
  echo "pg-image: installing debootstrap" >&2
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null
fi

work=$(mktemp -d /tmp/pg-image.XXXXXX)
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"

echo "pg-image: debootstrap $SUITE with postgresql-17 and pgvector (about a minute)" >&2
if ! debootstrap --variant=minbase --include=postgresql-17,postgresql-17-pgvector \
  "$SUITE" "$rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1; then
  tail -n 30 "$work/debootstrap.log" >&2
  echo "pg-image: debootstrap failed (log tail above)" >&2
  exit 1
fi

# The package's own cluster and the download cache are dead weight in a server image.
rm -rf "$rootfs/var/lib/postgresql/17" "$rootfs/etc/postgresql/17/main" \
  "$rootfs/var/cache/apt/archives/"*.deb "$rootfs/var/lib/apt/lists/"* \
  "$rootfs/usr/share/doc" "$rootfs/usr/share/man" "$rootfs/usr/share/locale"
install -m 0755 "$here/entrypoint.sh" "$rootfs/usr/local/bin/docker-entrypoint.sh"

echo "pg-image: importing as $IMAGE" >&2
tar -C "$rootfs" -c . | docker import \
  --change 'ENV PATH=/usr/lib/postgresql/17/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV PGDATA=/var/lib/postgresql/data' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'VOLUME /var/lib/postgresql/data' \
  --change 'EXPOSE 5432' \
  --change 'LABEL org.sigmasight.test-bench=debootstrap' \
  --change 'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]' \
  --change 'CMD ["postgres"]' \
  - "$IMAGE" >/dev/null
echo "pg-image: built $IMAGE" >&2
