#!/usr/bin/env sh
# The one system package the tests need that pip cannot install: mosquitto (the real broker the
# integration and fault tests run against on loopback). Installs it when it can (as root, with apt-get);
# otherwise prints the one command to run and stops, so `make test` never gets as far as failing tests
# at set-up. `make sim` does not need it (the simulator falls back to an embedded amqtt broker).
set -eu

have_mosquitto() {
  command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || [ -x /usr/local/sbin/mosquitto ]
}

have_mosquitto && exit 0

# Root, or a CI runner with password-less sudo: install it. Never prompts for a password.
SUDO=""
[ "$(id -u)" = 0 ] || { command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null && SUDO="sudo -n"; } || SUDO="no"
if [ "$SUDO" != "no" ] && command -v apt-get >/dev/null 2>&1; then
  echo "setup: installing mosquitto (Debian package)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mosquitto >/dev/null
  have_mosquitto && exit 0
  echo "setup: apt-get finished but no mosquitto executable was found" >&2
  exit 1
fi

if command -v apt-get >/dev/null 2>&1; then
  cmd="sudo apt-get install -y mosquitto"
elif command -v brew >/dev/null 2>&1; then
  cmd="brew install mosquitto"
elif command -v dnf >/dev/null 2>&1; then
  cmd="sudo dnf install -y mosquitto"
else
  cmd="install the mosquitto broker with your system's package manager"
fi
echo "setup: the tests need the mosquitto broker, which is not installed; run: $cmd" >&2
exit 1
