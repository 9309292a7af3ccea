#!/usr/bin/env bash
# Installs what optoloop needs to build and test, and only what is missing:
# Debian packages libopencv-dev (gocv), redis-server (tests), prometheus (tests, cluster up
# --observe), chromium (the dashboard's browser tests, the screenshots), pkg-config.
# Prints what it did; fails with a clear message when something is missing and cannot be installed.
set -euo pipefail

missing=()
pkg-config --exists opencv4 2>/dev/null || missing+=(libopencv-dev)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if ! command -v go >/dev/null 2>&1; then
	echo "deps: the Go toolchain (go) is not on PATH; install Go 1.26 or newer first" >&2
	exit 1
fi

if [ ${#missing[@]} -eq 0 ]; then
	echo "deps: all present (libopencv-dev, redis-server, prometheus, chromium, pkg-config)"
	exit 0
fi

echo "deps: missing: ${missing[*]}"
if ! command -v apt-get >/dev/null 2>&1; then
	echo "deps: cannot install ${missing[*]}: apt-get not found; install them with your system's package manager" >&2
	exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
		sudo=(sudo -n)
	else
		echo "deps: cannot install ${missing[*]}: not root and no password-less sudo; run: sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
		exit 1
	fi
fi
echo "deps: apt-get update"
"${sudo[@]}" apt-get update -q
echo "deps: apt-get install -y --no-install-recommends ${missing[*]}"
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "deps: installed ${missing[*]}"
