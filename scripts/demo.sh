#!/usr/bin/env bash
# `make demo`: a whole federation on this machine (inventories/local: 3 supernodes, 3 members,
# agents on 127.0.0.1), bootstrapped by the collection's own playbook, then its status and the
# URLs each supernode serves. `make demo-stop` (scripts/demo-stop.sh) stops it.
#
# Environment: ESGF_NM_LOCAL_ROOT (default <repo>/.demo) holds every node's files;
# ESGF_NM_LOCAL_PORT_BASE (default 17440) is the first port (sn1; then sn2, sn3, m1, m2, m3).
# Nothing here needs root: the agents run as the invoking user.
set -euo pipefail

# shellcheck source=scripts/demo-env.sh
source "$(dirname "${BASH_SOURCE[0]}")/demo-env.sh"

echo "bootstrapping the local federation in $ESGF_NM_LOCAL_ROOT (ports from $ESGF_NM_LOCAL_PORT_BASE)"
ansible-playbook -i inventories/local playbooks/bootstrap-federation.yml

sn1_socket="$ESGF_NM_LOCAL_ROOT/sn1/run/admin.sock"
echo
echo "== esgf-nm status (as sn1 sees the federation)"
"$ESGF_NM_LOCAL_ROOT/venv/bin/esgf-nm" status --socket "$sn1_socket" || true

echo
echo "== public endpoints of each supernode (no client certificate needed; the CA is $ESGF_NM_LOCAL_ROOT/pki/ca.pem)"
supernodes=$(ansible-inventory -i inventories/local --list 2>/dev/null \
  | python3 -c 'import json, sys; print(" ".join(json.load(sys.stdin)["supernodes"]["hosts"]))')
i=0
for sn in $supernodes; do
  port=$((ESGF_NM_LOCAL_PORT_BASE + i))
  echo "$sn:"
  echo "  https://127.0.0.1:$port/esgf-nm/                  (status page)"
  echo "  https://127.0.0.1:$port/esgf-nm/registration.xml"
  echo "  https://127.0.0.1:$port/esgf-nm/v1/status"
  i=$((i + 1))
done
echo
echo "try: curl --cacert $ESGF_NM_LOCAL_ROOT/pki/ca.pem https://127.0.0.1:$ESGF_NM_LOCAL_PORT_BASE/esgf-nm/v1/status"
echo "stop it with: make demo-stop"
