#!/usr/bin/env bash
# What the test suite needs besides the virtualenv, installed the same way for `make test` and
# `.ci/run`: as root, the Debian packages in .ci/apt-packages and Docker (.ci/docker-setup.sh);
# always, the official peer packages (`make peer peer-harbor`, black boxes for interop tests).
# Idempotent and quick when everything is present. A step that cannot run (no root, no network)
# says so on one line and the tests that need it skip with the reason.
set -uo pipefail
cd "$(dirname "$0")/.."

log() { echo "test-deps: $*" >&2; }
# Under CI (CI=true) a failed install fails the run; elsewhere the affected tests skip.
fail() {
  log "$*"
  if [ "${CI:-}" = true ]; then exit 1; fi
}

if [ "$(id -u)" = 0 ]; then
  # Debian packages for sandboxes, browsers and screens (bubblewrap, chromium, xvfb, x11vnc, ...).
  packages=$(grep -hv '^\s*#' .ci/apt-packages 2>/dev/null | tr -s ' \n' ' ')
  missing=""
  for p in $packages; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  if [ -n "$missing" ]; then
    log "installing$missing"
    apt-get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null \
      || fail "apt-get install failed; the tests needing$missing will skip"
  fi
  # Docker daemon for the container tests (never fails: those tests skip with the reason).
  bash .ci/docker-setup.sh
else
  log "not root: skipping the Debian packages and Docker (run as root, or see .ci/apt-packages" \
    "and .ci/docker-setup.sh); tests needing them skip with the reason"
fi

# The official hud package and harbor CLI (black boxes) for interop tests and benchmarks.
make --no-print-directory peer peer-harbor || fail "could not install the peer packages; peer tests will skip"
