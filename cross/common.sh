# Shared by cross/build and cross/test-aarch64: paths, installing what is missing, and
# small checks. Sourced, not run.
# shellcheck shell=bash
# shellcheck disable=SC2034  # variables here are used by the scripts that source this

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Everything cross goes under its own target dir, so a long release build never holds
# the lock of target/ that a concurrent `cargo test` on the host needs.
CROSS_DIR=${POSTROOM_CROSS_DIR:-$ROOT/target/cross}
DIST=$CROSS_DIR/dist
# zig (ziglang) + cargo-zigbuild from PyPI, for armv7 musl; versions verified here.
ZIGVENV=$CROSS_DIR/zigvenv
ZIGLANG_VERSION=0.17.1
CARGO_ZIGBUILD_VERSION=0.24.0

say() { printf '\n== %s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# Installs Debian packages for the given "command:package" pairs whose command is missing.
need_debs() {
  local pkgs=() pair bin pkg
  for pair in "$@"; do
    bin=${pair%%:*} pkg=${pair#*:}
    command -v "$bin" >/dev/null 2>&1 || pkgs+=("$pkg")
  done
  [ ${#pkgs[@]} -eq 0 ] && return 0
  # one package may serve several commands
  mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]}" | sort -u)
  say "installing Debian packages: ${pkgs[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
}

# The tools both scripts need for aarch64.
need_aarch64_tools() {
  need_debs aarch64-linux-gnu-gcc:gcc-aarch64-linux-gnu qemu-aarch64-static:qemu-user-static \
    file:file readelf:binutils
  need_rust_target aarch64-unknown-linux-musl
}

# rustup target add, only when the target's std is not installed yet.
need_rust_target() {
  rustup target list --installed 2>/dev/null | grep -qx "$1" && return 0
  say "rustup target add $1"
  rustup target add "$1"
}

need_rust_src() {
  rustup component list --installed 2>/dev/null | grep -q '^rust-src' && return 0
  say "rustup component add rust-src"
  rustup component add rust-src
}

# A venv under target/ with zig and cargo-zigbuild; returns non-zero when it cannot be had.
need_zig() {
  if [ -x "$ZIGVENV/bin/cargo-zigbuild" ] && "$ZIGVENV/bin/python" -m ziglang version >/dev/null 2>&1; then
    return 0
  fi
  say "creating $ZIGVENV (ziglang $ZIGLANG_VERSION, cargo-zigbuild $CARGO_ZIGBUILD_VERSION, about 450 MB)"
  rm -rf "$ZIGVENV"
  mkdir -p "$CROSS_DIR"
  if ! python3 -m venv "$ZIGVENV" 2>/dev/null; then
    need_debs "python3:python3-venv"
    [ -x /usr/bin/python3 ] && /usr/bin/python3 -m venv "$ZIGVENV" || return 1
  fi
  "$ZIGVENV/bin/pip" install -q "ziglang==$ZIGLANG_VERSION" "cargo-zigbuild==$CARGO_ZIGBUILD_VERSION" || return 1
  "$ZIGVENV/bin/python" -m ziglang version >/dev/null
}

# True when the ELF file has no program interpreter and no NEEDED entries: it runs
# without any shared library, whatever `file` calls it (static or static-pie).
is_static() {
  ! readelf -lW "$1" 2>/dev/null | grep -q 'INTERP' &&
    ! readelf -dW "$1" 2>/dev/null | grep -q '(NEEDED)'
}

# How to run a binary built for a target on this x86_64 host.
runner_for() {
  case "$1" in
  aarch64-*) echo qemu-aarch64-static ;;
  armv7-* | arm-*) echo qemu-arm-static ;;
  *) echo "" ;;
  esac
}

# Starts `postroom --data DIR serve` (through RUNNER if given) in the background, with
# stderr in LOG. Sets SERVE_PID. Returns non-zero if "ready" did not appear within
# TIMEOUT seconds or the process died first.
start_serve() {
  local runner=$1 bin=$2 data=$3 log=$4 timeout=${5:-60}
  # shellcheck disable=SC2086  # RUNNER is empty or one word
  $runner "$bin" --data "$data" serve --listen 127.0.0.1:0 --https-listen 127.0.0.1:0 >"$log.out" 2>"$log" &
  SERVE_PID=$!
  local waited=0
  while ! grep -q 'ready' "$log" 2>/dev/null; do
    if ! kill -0 "$SERVE_PID" 2>/dev/null; then
      return 1
    fi
    if [ "$waited" -ge $((timeout * 10)) ]; then
      return 1
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
}

# The web port of a serve whose log is $1 (from its "ready ... web on http://ADDR:PORT/").
serve_port() {
  grep -o 'web on http://[0-9.]*:[0-9]*' "$1" | head -1 | sed 's/.*://'
}

# GET http://127.0.0.1:$1$2 with bash's /dev/tcp (no curl needed); prints the response.
http_get() {
  local port=$1 path=$2
  exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
  printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$path" >&3
  timeout 30 cat <&3
  exec 3<&-
}

# Sends SIGTERM to SERVE_PID and waits; sets SERVE_RC (124 if it had to be killed).
stop_serve() {
  local n=0
  kill -TERM "$SERVE_PID" 2>/dev/null || true
  while kill -0 "$SERVE_PID" 2>/dev/null && [ $n -lt 300 ]; do
    sleep 0.1
    n=$((n + 1))
  done
  if kill -0 "$SERVE_PID" 2>/dev/null; then
    kill -KILL "$SERVE_PID" 2>/dev/null || true
    wait "$SERVE_PID" 2>/dev/null || true
    SERVE_RC=124
    return
  fi
  SERVE_RC=0
  wait "$SERVE_PID" || SERVE_RC=$?
}

# A small, well-formed mail for smoke tests.
# write_sample_eml FILE [MESSAGE-ID SUBJECT]
write_sample_eml() {
  local mid=${2:-<cross-smoke-1@example.com>} subject=${3:-The printer on the second floor}
  cat >"$1" <<EOF
From: Alice Customer <alice@example.com>
To: Support <support@example.org>
Subject: $subject
Date: Sun, 22 Nov 2026 10:00:00 +0000
Message-ID: $mid
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

Hello, the printer on the second floor jams on every page. Can you help?

Alice
EOF
}

# 1234567 -> 1,234,567
commas() { printf '%s' "$1" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta'; }
