# Build, test and CI entry points. `make help` lists the targets.
# `.ci/run` calls `make test`; the README documents the same command.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
# Steps of `make test` are prerequisites run strictly in the order listed, so that
# `make -k test` can report every failing step instead of stopping at the first.
.NOTPARALLEL:

VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.setup-stamp

VENV39 := .venv39
STAMP39 := $(VENV39)/.setup-stamp

COLLECTION_LINK := collection/ansible_collections/esgf/nodemgr
# Tools that shell out to ansible-* (ansible-lint, ansible-test, molecule) need the venv on PATH.
WITH_VENV := PATH="$(BIN):$$PATH"

# What `ruff` checks: the Python trees that exist (agent has its own config in agent/pyproject.toml).
RUFF_PATHS := $(wildcard agent plugins tests bench scripts)

header = @printf '\n\033[1m==> %s\033[0m\n' "$(1)"

# Run a pytest command; exit code 5 ("no tests collected") counts as success, for suites
# that may legitimately be empty. The agent suite does NOT use this: it must run tests.
pytest_allow_empty = rc=0; $(1) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "(no tests collected: nothing to run yet)"; \
	elif [ $$rc -ne 0 ]; then exit $$rc; fi

.PHONY: help setup system-packages lint ruff mypy vermin yamllint ansible-lint \
	sanity test test-agent test-agent39 test-repo bench demo demo-stop build clean distclean

help:
	@echo "make setup      create .venv (Python 3.11) with requirements-dev.txt and the agent"
	@echo "make lint       ruff, mypy (strict), vermin (3.9), yamllint, ansible-lint"
	@echo "make sanity     ansible-test sanity on what the collection build ships"
	@echo "make test       lint, agent tests (3.11 and 3.9), sanity, repository tests, the lab suite (root)"
	@echo "make test-lab   Molecule scenarios and failure drills on the lab (root; docs/lab.md)"
	@echo "make molecule   the Molecule scenarios only (molecule/default, molecule/federation)"
	@echo "make bench      benchmarks (bench/run.py)"
	@echo "make demo       local federation demo (scripts/demo.sh): bootstrap inventories/local, show status"
	@echo "make demo-stop  stop the local federation demo (scripts/demo-stop.sh)"
	@echo "make build      build the collection tarball into build/"
	@echo "make clean      remove build outputs and caches; distclean also removes the venvs"

# --------------------------------------------------------------------------- setup

setup: $(STAMP) $(COLLECTION_LINK) system-packages

# Re-run only when the requirements change; a second `make setup` is instant.
$(STAMP): requirements-dev.txt agent/pyproject.toml
	$(call header,setup: $(VENV))
	@if [ ! -x "$(PY)" ]; then \
		py=""; \
		if python3.11 -c 'import sys' >/dev/null 2>&1; then py=python3.11; \
		elif command -v pyenv >/dev/null 2>&1; then \
			py=$$(ls -d "$$(pyenv root)"/versions/3.11.*/bin/python3.11 2>/dev/null | sort -V | tail -n1); \
		fi; \
		if [ -z "$$py" ]; then echo "error: python3.11 not found (on PATH or under pyenv)" >&2; exit 1; fi; \
		echo "creating $(VENV) with $$py"; \
		"$$py" -m venv "$(VENV)"; \
	fi
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt -e agent
	@touch $@

# Lets ansible.cfg's `collections_path = ./collection` resolve esgf.nodemgr to this tree.
# Created here rather than committed: a committed directory symlink fails the `symlinks`
# sanity test (see .gitignore and galaxy.yml build_ignore).
$(COLLECTION_LINK):
	@mkdir -p $(@D)
	ln -sfn ../../.. $@

# Installs missing Debian packages as root (CI); otherwise only reports what is missing.
system-packages:
	@if [ "$$(id -u)" -eq 0 ]; then tests/tools/install-system-packages.sh; \
	else tests/tools/install-system-packages.sh --check; fi

# --------------------------------------------------------------------------- lint

lint: ruff mypy vermin yamllint ansible-lint

ruff: setup
	$(call header,ruff check $(RUFF_PATHS))
	$(BIN)/ruff check $(RUFF_PATHS)

mypy: setup
	$(call header,mypy (strict; config in agent/pyproject.toml))
	cd agent && $(BIN)/mypy

# The agent must run on Python 3.9 (RHEL/Rocky 9 system Python).
vermin: setup
	$(call header,vermin: agent/src must run on Python 3.9)
	$(BIN)/vermin -t=3.9- --no-tips --violations agent/src

yamllint: setup
	$(call header,yamllint (config: .yamllint))
	$(BIN)/yamllint --strict .

# Only when there is something to lint: roles/ and playbooks/ may still be empty.
ansible-lint: setup
	$(call header,ansible-lint (profile in .ansible-lint))
	@if find roles playbooks -type f \( -name '*.yml' -o -name '*.yaml' \) 2>/dev/null | grep -q .; then \
		$(WITH_VENV) ansible-lint; \
	else echo "(no roles or playbooks yet: skipped)"; fi

# --------------------------------------------------------------------------- sanity

# On a temp copy of exactly what `ansible-galaxy collection build` ships, offline; the
# reasons (and the get-pip stand-in) are explained at the top of tests/tools/sanity.sh.
sanity: setup
	$(call header,ansible-test sanity --python 3.11 (on the built collection))
	$(WITH_VENV) tests/tools/sanity.sh --python 3.11

# --------------------------------------------------------------------------- test

test: setup lint test-agent test-agent39 sanity test-repo test-lab
	@printf '\n\033[1m==> make test: all steps passed\033[0m\n'

# The main agent suite must run real tests: "no tests collected" (exit 5) fails here.
test-agent: setup
	$(call header,pytest agent/tests (Python 3.11))
	cd agent && $(BIN)/pytest -q

# Same suite on Python 3.9, the oldest Python the agent supports (vermin checks syntax;
# this checks behaviour). Skipped, with a message, on machines without a 3.9.
# pyenv's own 3.9 first: a `python3.9` pyenv shim can be on PATH without working.
PYTHON39 = $(shell \
	py=""; \
	if command -v pyenv >/dev/null 2>&1; then \
		py=$$(ls -d "$$(pyenv root)"/versions/3.9.*/bin/python3.9 2>/dev/null | sort -V | tail -n1); \
	fi; \
	if [ -z "$$py" ] && python3.9 -c 'import sys' >/dev/null 2>&1; then py=$$(command -v python3.9); fi; \
	echo "$$py")

test-agent39: setup
	$(call header,pytest agent/tests (Python 3.9))
	@if [ ! -x "$(VENV39)/bin/python" ] && [ -z "$(PYTHON39)" ]; then \
		echo "SKIPPED: no Python 3.9 found (pyenv versions 3.9.* or a working python3.9 on PATH)"; \
	else \
		$(MAKE) --no-print-directory $(STAMP39); \
		cd agent && ../$(VENV39)/bin/pytest -q; \
	fi

$(STAMP39): requirements-py39.txt agent/pyproject.toml
	@if [ ! -x "$(VENV39)/bin/python" ]; then \
		py="$(PYTHON39)"; \
		echo "creating $(VENV39) with $$py"; \
		"$$py" -m venv "$(VENV39)"; \
	fi
	$(VENV39)/bin/python -m pip install --quiet --upgrade pip
	$(VENV39)/bin/python -m pip install --quiet -r requirements-py39.txt -e agent
	@touch $@

# Repository-level tests (tools, end-to-end, the lab's self-tests). May legitimately be empty.
# PYTHONPATH=collection makes `ansible_collections.esgf.nodemgr` importable from the checkout.
# The failure drills run in test-lab (once, timed with the Molecule scenarios).
test-repo: setup
	$(call header,pytest tests/ (repository-level tests))
	@if find tests -name 'test_*.py' -not -path 'tests/output/*' | grep -q .; then \
		$(call pytest_allow_empty,PYTHONPATH="$(CURDIR)/collection" $(WITH_VENV) $(BIN)/pytest -q -p no:cacheprovider tests --ignore=tests/test_drills.py); \
	else echo "(no repository-level tests yet)"; fi

# --------------------------------------------------------------------------- the lab
# Real hosts on this machine (tests/lab: namespaces + sshd), managed over SSH: the Molecule
# scenarios (delegated driver; create/destroy start and tear down a lab) and the failure drills
# (tests/test_drills.py). Needs root; otherwise skipped with the lab's reason. Wall times go to
# bench/results/lab-suite-latest.json (target: the whole lab suite <= 15 minutes). `make test`
# runs test-lab last.
.PHONY: molecule test-lab
MOLECULE_SCENARIOS := default federation
LAB_SUITE_JSON := bench/results/lab-suite-latest.json

# Prints why the lab cannot run here (empty when it can).
lab_skip_reason = $(shell if [ "$$(id -u)" -ne 0 ]; then echo "not root (the lab needs network namespaces and sshd)"; \
	elif ! command -v sshd >/dev/null 2>&1 && [ ! -x /usr/sbin/sshd ]; then echo "sshd missing (make setup installs openssh-server)"; fi)

molecule: setup $(COLLECTION_LINK)
	$(call header,molecule test: $(MOLECULE_SCENARIOS) (on the lab))
	@reason="$(lab_skip_reason)"; if [ -n "$$reason" ]; then echo "SKIPPED: lab unavailable: $$reason"; exit 0; fi; \
	for s in $(MOLECULE_SCENARIOS); do \
		t0=$$(date +%s); \
		$(WITH_VENV) timeout 1200 molecule test -s $$s; \
		echo "molecule $$s: $$(( $$(date +%s) - t0 )) s"; \
	done

# Molecule default, then molecule/federation step by step and the failure drills on that same
# lab (one lab and one bootstrap for both), always torn down: tests/lab/suite.sh. Not root (or
# no sshd): prints SKIPPED with the reason and succeeds.
test-lab: setup $(COLLECTION_LINK)
	$(call header,the lab: Molecule scenarios and failure drills (tests/lab/suite.sh))
	@reason="$(lab_skip_reason)"; if [ -n "$$reason" ]; then echo "SKIPPED: lab unavailable: $$reason"; exit 0; fi; \
	$(WITH_VENV) tests/lab/suite.sh $(LAB_SUITE_JSON)

# --------------------------------------------------------------------------- run

# Simulator (ours vs the prototype), agent processes, playbooks on inventories/local; each
# writes under bench/results/. Measured, never asserted (see bench/README.md).
bench: setup $(COLLECTION_LINK)
	$(call header,benchmarks: simulator)
	$(PY) bench/run.py
	$(call header,benchmarks: agent)
	$(PY) bench/agent_bench.py
	$(call header,benchmarks: playbooks)
	$(WITH_VENV) $(PY) bench/playbooks_bench.py --latest

# A federation of agents on this machine (inventories/local), bootstrapped by the playbooks.
demo: setup
	$(call header,local federation demo)
	$(WITH_VENV) bash scripts/demo.sh

demo-stop:
	$(call header,stop the local federation demo)
	$(WITH_VENV) bash scripts/demo-stop.sh

build: setup
	$(call header,ansible-galaxy collection build)
	@mkdir -p build
	$(WITH_VENV) ansible-galaxy collection build --force --output-path build .

clean:
	rm -rf build dist tests/output agent/build .mypy_cache .ruff_cache .pytest_cache \
		agent/.mypy_cache agent/.ruff_cache agent/.pytest_cache
	find . -path ./.venv -prune -o -path ./.venv39 -prune -o -path ./collection -prune -o \
		-type d -name __pycache__ -print0 | xargs -0 rm -rf

distclean: clean
	rm -rf $(VENV) $(VENV39) collection/ansible_collections .demo .hypothesis agent/.hypothesis
