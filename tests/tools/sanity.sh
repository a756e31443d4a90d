#!/usr/bin/env bash
# Run `ansible-test sanity` on exactly what the collection build ships, offline.
#
#   tests/tools/sanity.sh [ansible-test sanity options]    (make sanity: --python 3.11)
#
# Run from the repository root with the dev venv's bin/ first on PATH (the Makefile does).
#
# Why a copy of the build: ansible-test must run from a directory named
# ansible_collections/<namespace>/<name> and tests every file it finds there. The checkout is
# named otherwise and holds much that users never get (agent tests, bench/, .venv*, caches), so
# we build the collection (galaxy.yml's build_ignore decides what ships), extract the tarball
# into a fresh temp dir, and put galaxy.yml back (the build turns it into MANIFEST.json;
# ansible-test reads galaxy.yml for the collection's metadata). A copy rather than a link
# farm: the `symlinks` sanity test rejects symlinks that point outside the collection. The
# temp dir is not a git repository, so ansible-test uses its "unversioned" source provider
# and simply lists the files on disk.
#
# Why pep8/pylint skip agent/src: the agent is an ordinary Python package with its own,
# stricter checks (ruff with its config in agent/pyproject.toml, mypy --strict, vermin 3.9,
# its tests on 3.9 and 3.11). ansible-test's pep8/pylint would add ansible-core's internal
# conventions (e.g. `_` is a disallowed name) on top. Every other sanity test (compile,
# no-assert, shebang, smart quotes, line endings, symlinks, ...) still covers it. The skip
# entries are generated into the temp copy only, so they always match the files that exist.
#
# Why offline works: each sanity test gets a venv in which ansible-test bootstraps pip with
# a get-pip script, downloaded from ci-files.testing.ansible.com unless
# ~/.ansible/test/cache/get_pip_<pip version>.py exists. The pip version comes from
# ansible_test/_internal/python_requirements.py (get_venv_packages; "24.2" in 2.19). When that
# file is missing we install tests/tools/get_pip_offline.py there; with internet access the
# real script would have been cached and is left alone.
set -euo pipefail

repo=$(pwd)
[[ -f "${repo}/galaxy.yml" ]] || { echo "sanity.sh: run from the repository root" >&2; exit 2; }

pip_version=$(python - <<'EOF'
from types import SimpleNamespace

from ansible_test._internal.python_requirements import get_venv_packages

print(get_venv_packages(SimpleNamespace(version="3.11"))["pip"])
EOF
)
get_pip_cache="${HOME}/.ansible/test/cache/get_pip_${pip_version//./_}.py"
if [[ ! -e "${get_pip_cache}" ]]; then
    echo "installing the offline get-pip stand-in at ${get_pip_cache}"
    mkdir -p "$(dirname "${get_pip_cache}")"
    cp "${repo}/tests/tools/get_pip_offline.py" "${get_pip_cache}"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/esgf-nodemgr-sanity.XXXXXX")
trap 'rm -rf "${tmp}"' EXIT
root="${tmp}/ansible_collections/esgf/nodemgr"
mkdir -p "${root}"

ansible-galaxy collection build --force --output-path "${tmp}/dist" "${repo}" >/dev/null
tar -xzf "${tmp}"/dist/esgf-nodemgr-*.tar.gz -C "${root}"
rm -f "${root}/MANIFEST.json" "${root}/FILES.json"
cp "${repo}/galaxy.yml" "${root}/"

ansible_version=$(python -c 'from ansible.release import __version__ as v; print(".".join(v.split(".")[:2]))')
if [[ -d "${root}/agent/src" ]]; then
    mkdir -p "${root}/tests/sanity"
    (cd "${root}" && find agent/src -name '*.py' | sort | while read -r path; do
        printf '%s pep8!skip\n%s pylint!skip\n' "${path}" "${path}"
    done) >>"${root}/tests/sanity/ignore-${ansible_version}.txt"
fi

cd "${root}"
ansible-test sanity --color no "$@"
