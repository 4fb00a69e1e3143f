#!/usr/bin/env bash
# Installs the Debian 12 packages pbx needs to build (and, with --test, to run its tests).
# Installs only what is missing; runs apt-get update when the package lists are absent.
set -euo pipefail

build_pkgs=(
  build-essential cmake pkg-config
  librocksdb-dev libcapnp-dev capnproto libnng-dev
  libsofia-sip-ua-dev libspandsp-dev libtiff-dev libssl-dev
  libcpp-httplib-dev nlohmann-json3-dev libcli11-dev libfmt-dev libtomlplusplus-dev
  libnl-route-3-dev
)
# clang + libclang-rt (a Recommends, so named here): the libFuzzer targets in tests/fuzz/.
# baresip-core: the SIP interop test in tests/system/.
# kamailio (and kamcmd in it): the carrier of the trunk tests (tests/system/kamailio_carrier.h);
# kamailio-tls-modules: its TLS listener for the TLS trunk tests.
# chromium runs the web admin's browser tests (tests/browser), driven by playwright-core
# from npm (package-lock.json there; `npm ci` below).
# sip-tester (sipp): the two phones of the browser test's call (tests/browser/calls_test.mjs).
test_pkgs=(libgtest-dev libgmock-dev clang-format clang libclang-rt-14-dev baresip-core kamailio
           kamailio-tls-modules chromium sip-tester)
testing=false
[[ "${1:-}" == "--test" ]] && testing=true

want=("${build_pkgs[@]}")
if $testing; then
  want+=("${test_pkgs[@]}")
  # Debian's nodejs and npm, unless a node with npm is already there (a nodesource nodejs
  # bundles npm and conflicts with Debian's npm package).
  command -v node >/dev/null && command -v npm >/dev/null || want+=(nodejs npm)
fi

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [[ ${#missing[@]} -gt 0 ]]; then
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  echo "install-deps: installing ${missing[*]}"
  if [[ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e lock -e partial)" ]]; then
    $sudo apt-get update -qq
  fi
  if ! DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
      "${missing[@]}"; then
    # Stale package lists (a removed version) are the usual cause: refresh once and retry.
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
      "${missing[@]}"
  fi
fi

# The browser tests' npm packages, exactly as package-lock.json pins them; again only when
# missing or stale (npm ci wipes node_modules, so it is not run every time).
if $testing; then
  browser="$(cd "$(dirname "$0")/.." && pwd)/tests/browser"
  stamp="$browser/node_modules/.package-lock.json"
  if [[ ! -f "$stamp" || "$browser/package-lock.json" -nt "$stamp" ]]; then
    echo "install-deps: npm ci in tests/browser"
    (cd "$browser" && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi
