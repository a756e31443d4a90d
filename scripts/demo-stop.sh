#!/usr/bin/env bash
# `make demo-stop`: stop every agent of the local federation started by `make demo`
# (playbooks/stop.yml on inventories/local). Files stay in $ESGF_NM_LOCAL_ROOT; `make demo`
# starts it again with the same certificates, state and epoch.
set -euo pipefail

# shellcheck source=scripts/demo-env.sh
source "$(dirname "${BASH_SOURCE[0]}")/demo-env.sh"

if [ ! -d "$ESGF_NM_LOCAL_ROOT" ]; then
  echo "no local federation in $ESGF_NM_LOCAL_ROOT: nothing to stop"
  exit 0
fi
ansible-playbook -i inventories/local playbooks/stop.yml
