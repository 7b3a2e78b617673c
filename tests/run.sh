#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what the tests need, then checks
# formatting, lints, and runs every test. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*"; }

# Debian packages the tests talk to or use: a real Dovecot (IMAP + POP3, each test starts
# its own instance on 127.0.0.1 with random ports), a real SMTP server (aiosmtpd on
# Debian's /usr/bin/python3, tests/support/smtpd.py), openssl for their certificates,
# procps, and a headless Chromium with its WebDriver for the web UI
# (tests/support/browser.rs). Installed only when missing.
need_pkgs=()
for pair in "kill:procps" "time:time" "openssl:openssl" "dovecot:dovecot-core" \
            "/usr/lib/dovecot/imap:dovecot-imapd" "/usr/lib/dovecot/pop3:dovecot-pop3d" \
            "/usr/bin/chromium:chromium" "/usr/bin/chromedriver:chromium-driver" \
            "/usr/share/zoneinfo/Europe/Paris:tzdata"; do
  bin=${pair%%:*} pkg=${pair#*:}
  case "$bin" in
    /*) [ -e "$bin" ] || need_pkgs+=("$pkg") ;;
    *) command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/bin/$bin" ] || [ -x "/usr/sbin/$bin" ] || need_pkgs+=("$pkg") ;;
  esac
done
/usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1 || need_pkgs+=("python3-aiosmtpd")
if [ ${#need_pkgs[@]} -gt 0 ]; then
  say "installing ${need_pkgs[*]}"
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}"
  # The package's own system service is not needed (tests run private instances).
  if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl disable --now dovecot >/dev/null 2>&1 || true; fi
fi

for comp in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$comp" || rustup component add "$comp"
done

say "cargo fmt --check"
cargo fmt --check

say "cargo clippy --all-targets -- -D warnings"
cargo clippy --locked --all-targets -- -D warnings

say "cargo test"
cargo test --locked

# The Raspberry Pi build: static aarch64 binary within the size budget, one TLS stack,
# the unit tests and a smoke test of the binary under qemu-aarch64 (cross/README.md).
# armv7 is built by `cross/build armv7` by hand (its zig toolchain is a 442 MB download).
say "cross/build aarch64 x86_64"
cross/build aarch64 x86_64

say "cross/test-aarch64"
cross/test-aarch64

say "all tests passed"
