#!/usr/bin/env bash
# Install the Debian packages the test suites need, when they are missing.
#
#   tests/tools/install-system-packages.sh           install what is missing (needs root)
#   tests/tools/install-system-packages.sh --check   only report what is missing; exit 0
#
# `make setup` runs the first form as root (CI) and the second form otherwise.
# `apt-get update` runs only when something actually has to be installed, so on a machine
# that already has everything this is a few `test -e` checks and no network traffic.
set -euo pipefail

check_only=0
if [[ "${1:-}" == "--check" ]]; then
    check_only=1
fi

# One entry per line: "<file that proves the package is installed> <apt package>".
REQUIRED=(
    # PostgreSQL server binaries: the agent's metrics tests initdb a throw-away cluster.
    "/usr/lib/postgresql/15/bin/initdb postgresql-15"
    # Browser tests of the status page (headless, driven by Playwright for Python; never
    # `playwright install`: Debian's chromium is the browser).
    "/usr/bin/chromium chromium"
    # The multi-host lab (tests/lab, `make test-lab` inside `make test`): one sshd per lab host
    # (network namespace) and the ssh client Ansible uses, the namespaces, bridge and veths (ip),
    # link cuts between lab hosts with nftables, reachability checks with ping; nsenter,
    # unshare and setpriv come with util-linux (essential).
    "/usr/sbin/sshd openssh-server"
    "/usr/bin/ssh openssh-client"
    "/usr/sbin/ip iproute2"
    "/usr/sbin/nft nftables"
    "/usr/bin/ping iputils-ping"
    # Inside lab hosts: Debian's python3 is Ansible's interpreter, the agent role makes the
    # agent's venv with its venv module (ensurepip: python3-venv), the Molecule verify reads
    # the agent's user with ps.
    "/usr/bin/python3 python3"
    "/usr/lib/python3.11/ensurepip/__init__.py python3-venv"  # Debian 12: python3 is 3.11
    "/usr/bin/ps procps"
    # tests/test_systemd_unit.py: systemd's own checks of the agent role's unit (verify,
    # security --offline); nothing here runs systemd as PID 1.
    "/usr/bin/systemd-analyze systemd"
)

missing=()
for entry in "${REQUIRED[@]}"; do
    read -r path package <<<"${entry}"
    if [[ ! -e "${path}" ]]; then
        missing+=("${package}")
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "system packages: all present"
    exit 0
fi

if [[ ${check_only} -eq 1 || ${EUID} -ne 0 ]]; then
    echo "system packages missing: ${missing[*]}"
    echo "  install them as root with: tests/tools/install-system-packages.sh"
    echo "  (tests that need them skip with a reason until then)"
    exit 0
fi

echo "system packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
