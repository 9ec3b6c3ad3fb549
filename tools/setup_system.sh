#!/usr/bin/env sh
# The system packages the tests need that pip cannot install: mosquitto (the real broker the integration
# and fault tests run against on loopback) and gcc-multilib (gcc -m32, for the 32-bit MicroPython builds
# that measure the heap at an ESP32's object sizes: tools/build_ports.py). Installs what is missing when
# it can (as root, with apt-get); otherwise prints the one command to run and stops, so `make test` never
# gets as far as failing tests at set-up. `make sim` needs neither (the simulator falls back to an
# embedded amqtt broker).
set -eu

have_mosquitto() {
  command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || [ -x /usr/local/sbin/mosquitto ]
}

have_gcc32() {
  echo 'int main(void){return 0;}' | gcc -m32 -x c -o /dev/null - >/dev/null 2>&1
}

missing=""
have_mosquitto || missing="mosquitto"
have_gcc32 || missing="$missing gcc-multilib"
missing="${missing# }"
[ -z "$missing" ] && exit 0

# Root, or a CI runner with password-less sudo: install them. Never prompts for a password.
SUDO=""
[ "$(id -u)" = 0 ] || { command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null && SUDO="sudo -n"; } || SUDO="no"
if [ "$SUDO" != "no" ] && command -v apt-get >/dev/null 2>&1; then
  echo "setup: installing $missing (Debian packages)"
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086  # one word per package
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
  ok=1
  have_mosquitto || { echo "setup: apt-get finished but no mosquitto executable was found" >&2; ok=0; }
  have_gcc32 || { echo "setup: apt-get finished but gcc still cannot build 32-bit programs" >&2; ok=0; }
  [ "$ok" = 1 ] && exit 0
  exit 1
fi

if command -v apt-get >/dev/null 2>&1; then
  cmd="sudo apt-get install -y $missing"
elif command -v brew >/dev/null 2>&1 && [ "$missing" = "mosquitto" ]; then
  cmd="brew install mosquitto"
elif command -v dnf >/dev/null 2>&1; then
  cmd="sudo dnf install -y $(echo "$missing" | sed 's/gcc-multilib/glibc-devel.i686 libgcc.i686/')"
else
  cmd="install $missing with your system's package manager"
fi
echo "setup: the tests need $missing, which is not installed; run: $cmd" >&2
exit 1
