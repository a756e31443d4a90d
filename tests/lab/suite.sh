#!/usr/bin/env bash
# The whole lab suite (`make test-lab`, part of `make test`): the Molecule scenarios and the
# failure drills on real lab hosts over SSH, timed; wall times and load averages go to
# bench/results/lab-suite-latest.json. Needs root: otherwise prints why and exits 0 (skipped).
#
#   1. molecule test -s default                 one host, its own lab (mdef), destroyed by Molecule
#   2. molecule/federation, step by step        the sequence of `molecule test`: destroy, syntax,
#      create (Molecule's create runs prepare too), converge (bootstrap), idempotence (rerun),
#      side-effect (add m3), verify
#   3. tests/test_drills.py on that same lab    the drills start from the federation Molecule
#      built and verified (ESGF_DRILLS_LAB=mfed): one lab and one bootstrap for both, instead of
#      a second lab bootstrapped again by the drills (run alone, the drills build their own)
#   4. molecule destroy -s federation           always: also when a step fails or on ^C/SIGTERM
#
# Usage (from the repository root, venv's bin on PATH): tests/lab/suite.sh [results.json]
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
results=${1:-bench/results/lab-suite-latest.json}
venv_bin="$PWD/.venv/bin"
export PATH="$venv_bin:$PATH"

if [[ $(id -u) -ne 0 ]]; then
    echo "SKIPPED: lab unavailable: not root (the lab needs network and mount namespaces, nftables, sshd)"
    exit 0
fi
if ! reason=$("$venv_bin/python" -c 'from tests.lab.fixtures import lab_skip_reason; print(lab_skip_reason() or "")'); then
    echo "lab suite: cannot ask the lab whether it can run here (is the venv set up? make setup)" >&2
    exit 1
fi
if [[ -n "$reason" ]]; then
    echo "SKIPPED: $reason"
    exit 0
fi

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
declare -a steps=()
failed=""
t_suite=$(now)
load_start=$(load)

# step NAME COMMAND...: run, time, remember the first failure (later steps still run where useful).
step() {
    local name=$1 t0 rc
    shift
    printf '\n\033[1m--> lab suite: %s\033[0m (load %s)\n' "$name" "$(load)"
    t0=$(now)
    "$@"
    rc=$?
    steps+=("$(printf '"%s": {"s": %.1f, "rc": %d, "load_1_5_15": "%s"}' "$name" "$(since "$t0")" "$rc" "$(load)")")
    if [[ $rc -ne 0 && -z "$failed" ]]; then failed="$name (exit $rc)"; fi
    return $rc
}

federation_destroy() {
    # Idempotent (destroy.yml does nothing when the lab is gone); a second try if the first fails,
    # then the lab's own command as the last resort.
    timeout 300 molecule destroy -s federation || timeout 300 molecule destroy -s federation \
        || "$venv_bin/python" -m tests.lab destroy --name mfed
}
on_signal() {
    echo "lab suite interrupted: destroying the federation lab" >&2
    federation_destroy
    exit 130
}
trap on_signal INT TERM HUP

step molecule_default timeout 1200 molecule test -s default

fed_ok=1
for s in destroy syntax create converge idempotence side-effect verify; do
    name=federation_${s//-/_}
    if [[ $s == create ]]; then name=federation_create_prepare; fi
    if ! step "$name" timeout 900 molecule "$s" -s federation; then
        fed_ok=0
        break
    fi
done

if [[ $fed_ok -eq 1 ]]; then
    # The drills' results file records the bootstrap and rerun the Molecule steps timed above.
    times_json="{$(IFS=,; echo "${steps[*]}")}"
    ESGF_DRILLS_LAB=mfed ESGF_DRILLS_SUITE_TIMES="$times_json" PYTHONPATH="$PWD/collection" \
        step drills timeout 1800 "$venv_bin/pytest" -q -p no:cacheprovider -m lab tests/test_drills.py
else
    echo "lab suite: the federation scenario failed; the drills (which start from it) are not run" >&2
    steps+=('"drills": {"s": 0, "rc": -1, "skipped": "the federation scenario failed"}')
fi

step federation_teardown federation_destroy
trap - INT TERM HUP

total=$(since "$t_suite")
mkdir -p "$(dirname "$results")"
printf '{"what": "wall time of the lab suite (make test-lab: Molecule default, federation step by step, the drills on the federation lab)", "recorded_at": "%s", "cpus": %d, "load_1_5_15_at_start": "%s", "load_1_5_15_at_end": "%s", "steps": {%s}, "total_s": %.1f, "target_s": 900, "failed": %s}\n' \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(nproc)" "$load_start" "$(load)" "$(IFS=,; echo "${steps[*]}")" "$total" \
    "$([[ -n $failed ]] && printf '"%s"' "$failed" || echo null)" \
    | "$venv_bin/python" -m json.tool > "$results.tmp" && mv "$results.tmp" "$results"
echo "the lab suite took ${total%.*} s (target 900 s): $results"

left=$("$venv_bin/python" -c 'from tests.lab import leftovers; print("; ".join(leftovers("mdef") + leftovers("mfed")))')
if [[ -n "$left" ]]; then
    echo "lab suite: left behind: $left" >&2
    failed=${failed:-"teardown incomplete"}
fi
if [[ -n "$failed" ]]; then
    echo "lab suite FAILED: $failed" >&2
    exit 1
fi
