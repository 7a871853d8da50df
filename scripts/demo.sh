#!/usr/bin/env bash
# The main job on its built-in default: boot the demo guest under rr-vmm.
set -euo pipefail
cd "$(dirname "$0")/.."
exec build/bin/rr-vmm run
