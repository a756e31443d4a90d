"""``python -m esgf_nodemgr``: the ``esgf-nm`` command."""

from __future__ import annotations

from esgf_nodemgr.cli.main import entrypoint

if __name__ == "__main__":
    entrypoint()
