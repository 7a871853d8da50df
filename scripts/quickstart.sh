#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to the main job: installs what is
# needed, builds, then records, verifies and replays the built-in demo guest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$(nproc)"
scripts/demo.sh
