# Sourced by scripts/demo.sh and scripts/demo-stop.sh (not run): the repository as the working
# directory, the venv's tools first on PATH, and where the local federation lives.
#   ESGF_NM_LOCAL_ROOT       every node's files (default <repo>/.demo)
#   ESGF_NM_LOCAL_PORT_BASE  first port (sn1; then sn2, sn3, m1, m2, m3; default 17440)
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
export PATH="$repo/.venv/bin:$PATH"
export ESGF_NM_LOCAL_ROOT="${ESGF_NM_LOCAL_ROOT:-$repo/.demo}"
export ESGF_NM_LOCAL_PORT_BASE="${ESGF_NM_LOCAL_PORT_BASE:-17440}"
export ANSIBLE_FORKS="${ANSIBLE_FORKS:-10}"
