"""Offline stand-in for the ``get-pip`` bootstrap script that ``ansible-test`` downloads.

``ansible-test sanity`` builds one virtual environment per test and bootstraps pip in it
by running ``~/.ansible/test/cache/get_pip_<version>.py`` (downloading it from
ci-files.testing.ansible.com when that file is missing). This machine cannot reach that
host, so ``make sanity`` copies this script to the cache path when -- and only when -- no
cached script exists; on a machine with internet access the real script is used.

ansible-test runs the script as ``__main__`` with the arguments it would give get-pip,
e.g. ``--disable-pip-version-check pip==24.2 --no-setuptools --no-wheel``. We:

1. bootstrap pip from the standard library's bundled wheel (``python -m ensurepip``);
2. run ``python -m pip install`` with the given arguments, minus the get-pip-only flags
   ``--no-setuptools``/``--no-wheel`` which ``pip install`` does not accept, so the pinned
   pip version ansible-test asks for is installed from the configured package index.

``ensurepip`` sets ``PIP_CONFIG_FILE=/dev/null`` while it runs, which hides the machine's
pip configuration (CA bundle, package indexes); both steps run as subprocesses and the
variable is removed from their environment so the second step sees the real configuration.
"""

from __future__ import annotations

import os
import subprocess
import sys

# Flags get-pip understands but `pip install` rejects.
GET_PIP_ONLY_FLAGS = frozenset({"--no-setuptools", "--no-wheel"})


def pip_environment() -> dict[str, str]:
    """Return this process's environment without a pip config override."""
    env = dict(os.environ)
    env.pop("PIP_CONFIG_FILE", None)
    return env


def pip_install_arguments(argv: list[str]) -> list[str]:
    """Translate get-pip arguments into `pip install` arguments."""
    return [arg for arg in argv if arg not in GET_PIP_ONLY_FLAGS]


def main(argv: list[str]) -> int:
    """Bootstrap pip with ensurepip, then install what ansible-test asked for."""
    env = pip_environment()
    steps = [
        [sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"],
        [sys.executable, "-m", "pip", "install", *pip_install_arguments(argv)],
    ]
    for command in steps:
        result = subprocess.run(command, env=env, check=False)
        if result.returncode != 0:
            sys.stderr.write(
                f"get_pip_offline: {' '.join(command)} failed with exit code {result.returncode}\n"
            )
            return result.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
