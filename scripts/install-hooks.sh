#!/usr/bin/env bash
# Installs the repository's git hooks (scripts/git-hooks/: pre-commit) for this clone, by pointing
# git's core.hooksPath at them. Idempotent. Undo with `git config --unset core.hooksPath`.
#
#   scripts/install-hooks.sh [--force]
#
# --force replaces a core.hooksPath that points somewhere else.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

hooks=scripts/git-hooks
current=$(git config --get core.hooksPath || true)
if [[ $current == "$hooks" ]]; then
  echo "install-hooks: core.hooksPath is $hooks already (pre-commit installed)" >&2
  exit 0
fi
if [[ -n $current && ${1:-} != --force ]]; then
  echo "install-hooks: core.hooksPath is already set to '$current'; the hooks in $hooks were NOT installed. Run \`scripts/install-hooks.sh --force\` to replace it (or call $hooks/pre-commit from your own hooks)" >&2
  exit 1
fi
chmod +x "$hooks"/*
git config core.hooksPath "$hooks"
echo "install-hooks: core.hooksPath = $hooks: git commit now runs $hooks/pre-commit (skip once with git commit --no-verify)" >&2
