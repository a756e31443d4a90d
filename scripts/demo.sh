#!/usr/bin/env bash
# Placeholder for `make demo`: the local federation demo (several agents on this machine,
# driven by inventories/local) is not built yet. It will replace this script.
set -euo pipefail
echo "The local federation demo is not built yet (scripts/demo.sh is a placeholder)."
exit 0
