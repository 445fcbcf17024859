#!/usr/bin/env bash
# CI: the container image test (test/system/container.test.ts). Installs podman and builds a local
# node:24-slim base with the shared script (no registry), then builds and runs the image.
# Usage (from anywhere): deploy/ci-container.sh     Needs root (podman, debootstrap).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# CI clones the repo elsewhere with a copy of shared/ beside the clone; locally that is /work/shared.
SHARED_SCRIPT="$(dirname "$REPO")/shared/tools/local-node-image.sh"
[ -f "$SHARED_SCRIPT" ] || { echo "ci-container: $SHARED_SCRIPT not found" >&2; exit 1; }

bash "$SHARED_SCRIPT"
# shellcheck source=/dev/null
source "$SHARED_SCRIPT" --env

cd "$REPO"
[ -d node_modules ] || npm ci --no-audit --no-fund
RELAY_CONTAINER_TEST=1 npx vitest run test/system/container.test.ts "$@"
