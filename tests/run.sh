#!/usr/bin/env bash
# The whole test suite (the README's test command; .ci/run calls it).
#
# The Python and JavaScript rule tests build real components with
# componentize-py and componentize-js. This script installs the pinned
# versions once, under the Cargo target directory (a Python venv and an npm
# prefix), unless they are already on PATH, then runs every test.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
tools="$target/lang-tools"
py_version="0.25.1"
js_version="0.23.0"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
  echo "tests/run.sh: installing $* with apt-get" >&2
  as_root apt-get update -qq && as_root apt-get install -y -qq "$@" >/dev/null
}

# componentize-py, in a venv.
if ! componentize-py --version 2>/dev/null | grep -q "$py_version"; then
  if [ ! -x "$tools/venv/bin/componentize-py" ]; then
    command -v python3 >/dev/null || apt_install python3 python3-venv
    python3 -m venv "$tools/venv" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$tools/venv"; }
    "$tools/venv/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$py_version"
  fi
  export PATH="$tools/venv/bin:$PATH"
fi

# componentize-js, in an npm prefix.
if ! componentize-js --version 2>/dev/null | grep -q "$js_version"; then
  if [ ! -x "$tools/js/node_modules/.bin/componentize-js" ]; then
    command -v npm >/dev/null || apt_install nodejs npm
    npm install --prefix "$tools/js" --no-audit --no-fund --loglevel=error \
      "@bytecodealliance/componentize-js@$js_version" >/dev/null
  fi
  export PATH="$tools/js/node_modules/.bin:$PATH"
fi

# An OCI registry for the pack tests (tests/packs.rs starts its own on
# loopback with a temporary store): Debian's docker-registry.
if [ ! -x /usr/bin/docker-registry ] && ! command -v docker-registry >/dev/null; then
  apt_install docker-registry
fi

# A NATS server with JetStream for the cluster tests (each starts its own
# on loopback): Debian's nats-server.
if [ ! -x /usr/sbin/nats-server ] && ! command -v nats-server >/dev/null; then
  apt_install nats-server
fi

# A headless browser for the web console's tests (tests/console.rs drives
# it through chromedriver): Debian's chromium and chromium-driver.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  apt_install chromium chromium-driver
fi

cd "$root"
exec cargo test --workspace "$@"
