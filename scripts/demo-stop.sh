#!/usr/bin/env bash
# `make demo-stop`: stop every agent of the local federation started by `make demo`
# (playbooks/stop.yml on inventories/local). Files stay in $ESGF_NM_LOCAL_ROOT; `make demo`
# starts it again with the same certificates, state and epoch.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
export PATH="$repo/.venv/bin:$PATH"
export ESGF_NM_LOCAL_ROOT="${ESGF_NM_LOCAL_ROOT:-$repo/.demo}"
export ESGF_NM_LOCAL_PORT_BASE="${ESGF_NM_LOCAL_PORT_BASE:-17440}"
export ANSIBLE_FORKS="${ANSIBLE_FORKS:-10}"

if [ ! -d "$ESGF_NM_LOCAL_ROOT" ]; then
  echo "no local federation in $ESGF_NM_LOCAL_ROOT: nothing to stop"
  exit 0
fi
ansible-playbook -i inventories/local playbooks/stop.yml
