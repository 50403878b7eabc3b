#!/usr/bin/env bash
# Installs what spt needs to build, test and fetch its example data sets (Debian).
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  cmake ninja-build ccache g++ pkg-config zlib1g-dev libopenblas-dev libopenblas0-pthread \
  nlohmann-json3-dev libcli11-dev libpng-dev libsndfile1-dev libsoxr-dev libzip-dev libjpeg62-turbo-dev libgtest-dev libbenchmark-dev \
  libopenmpi-dev openmpi-bin \
  python3 python3-torch libtorch-dev python3-numpy python3-matplotlib \
  dataset-fashion-mnist bible-kjv asterisk-core-sounds-en-wav >/dev/null
