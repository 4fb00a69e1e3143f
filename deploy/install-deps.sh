#!/usr/bin/env bash
# Installs the Debian 12 packages pbx needs to build (and, with --test, to run its tests).
# Installs only what is missing; runs apt-get update when the package lists are absent.
set -euo pipefail

build_pkgs=(
  build-essential cmake pkg-config
  librocksdb-dev libcapnp-dev capnproto libnng-dev
  libsofia-sip-ua-dev libspandsp-dev libssl-dev
  libcpp-httplib-dev nlohmann-json3-dev libcli11-dev libfmt-dev libtomlplusplus-dev
  libnl-route-3-dev
)
# clang + libclang-rt (a Recommends, so named here): the libFuzzer targets in tests/fuzz/.
# baresip-core: the SIP interop test in tests/system/.
test_pkgs=(libgtest-dev libgmock-dev clang-format clang libclang-rt-14-dev baresip-core)

want=("${build_pkgs[@]}")
if [[ "${1:-}" == "--test" ]]; then want+=("${test_pkgs[@]}"); fi

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

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
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
