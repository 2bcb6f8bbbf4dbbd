#!/usr/bin/env bash
# Mutation testing (mutmut 3) of the modules that guard users and data, each against the fast unit tests that
# cover it. Not part of the default test run: it takes minutes per module (see docs/mutation-report.md).
#
#   bash scripts/mutation.sh                      # every module below, the small ones first
#   bash scripts/mutation.sh bot/jobs/store.py    # only the named modules
#   bash scripts/mutation.sh --survivors bot/jobs/store.py   # again, only the last run's survivors, against
#                                                  # the tests as they are now (after adding tests for them)
#
# Each module runs in its own scratch copy of the working tree (mutmut writes a mutants/ folder beside its
# config), at nice 15 and one mutant at a time, so that a shared machine stays usable. Results go to
# benchmarks/out/mutation/: NAME.txt (every mutant's verdict), NAME.json (the counts and the minutes taken).
# MUTATION_TIMEOUT_MULTIPLIER (mutmut's, default 15): a mutant is "timed out" past this many times its tests'
# usual time; 3 keeps a module whose broken mutants make tests wait on a pipe or an event (decoder) to minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
python="${PYTHON:-$root/.venv/bin/python}"
out="$root/benchmarks/out/mutation"
scratch="${MUTATION_SCRATCH:-${TMPDIR:-/tmp}/nst-mutation}"
mkdir -p "$out" "$scratch"
"$python" -c "import mutmut" 2> /dev/null \
  || { echo "mutmut is not installed for $python: pip install -e '.[mutation]'" >&2; exit 2; }

# module | the fast tests that cover it (space-separated); the order is smallest module first.
modules=(
  "bot/intake/decode_budget.py|tests/intake/test_decode_budget.py tests/intake/test_decode_budget_edges.py"
  "bot/intake/options.py|tests/face/test_bot_parts.py tests/intake/test_build_options.py"
  "bot/jobs/admission.py|tests/jobs/test_rules.py tests/jobs/test_settings.py tests/jobs/test_admission_edges.py"
  "bot/face/views.py|tests/face/test_permissions.py tests/face/test_views.py"
  "bot/face/menu_picks.py|tests/face/test_context_menu_parts.py tests/jobs/test_disk.py tests/face/test_permissions.py tests/face/test_menu_picks_edges.py"
  "bot/intake/download.py|tests/intake/test_download_origins.py tests/intake/test_attachment_checks.py tests/intake/test_download_fetch.py tests/intake/test_hostile_uploads.py tests/face/test_bot_parts.py"
  "nst_engine/cost.py|tests/engine/test_cost.py tests/engine/test_cost_edges.py tests/engine/test_animation_cost.py tests/jobs/test_cost_budget.py tests/jobs/test_rules.py"
  "bot/jobs/store.py|tests/jobs/test_store.py tests/jobs/test_store_columns.py tests/jobs/test_rules.py tests/jobs/test_disk.py tests/jobs/test_settings.py tests/jobs/test_core.py tests/jobs/test_blend_inputs.py tests/jobs/test_animation_jobs.py tests/jobs/test_capacity.py"
  "bot/work/protocol.py|tests/jobs/test_protocol.py tests/jobs/test_core.py tests/jobs/test_blend_inputs.py tests/jobs/test_animation_jobs.py"
  "bot/face/buttons.py|tests/face/test_button_handlers.py tests/face/test_permissions.py tests/face/test_blends_and_upscale_levels.py"
  "bot/work/worker_output.py|tests/work/redis/test_worker_output.py"
  "bot/work/redis_queue.py|tests/work/redis/test_hostile_worker.py tests/work/redis/test_run_ids_and_expiry.py tests/work/redis/test_outages_mid_job.py tests/work/redis/test_queue_edges.py tests/work/redis/test_queue_submit_and_tidy.py"
  "bot/intake/decoder.py|tests/intake/test_decoder_worker_side.py tests/intake/test_decoder.py tests/intake/test_decoder_replies.py tests/intake/test_decode_budget.py"
  "bot/config.py|tests/test_config.py tests/jobs/test_settings.py tests/face/test_bot_parts.py tests/face/test_shard_ids.py tests/work/redis/test_metrics_and_config.py::test_queue_config_keys"
)

toml_list() { local first=1; printf '['; for item in "$@"; do ((first)) || printf ', '; first=0; printf '"%s"' "$item"; done; printf ']'; }

run_module() {
  local module=$1 tests=$2 name work started minutes
  name=$(echo "$module" | tr '/' '_' | sed 's/\.py$//')
  work="$scratch/$name"
  rm -rf "$work" && mkdir -p "$work/mutants"  # on PYTHONPATH from the start, for the test subprocesses too
  git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$work" 2>/dev/null || true
  local others=()  # what the tests read besides the code (docs, the example config, ...): copied beside mutants/
  for entry in "$work"/* "$work"/.[!.]*; do
    case ${entry##*/} in bot|nst_engine|tests|pyproject.toml|mutants) ;; *) others+=("${entry##*/}") ;; esac
  done
  # shellcheck disable=SC2086
  cat >> "$work/pyproject.toml" <<TOML

[tool.mutmut]
source_paths = ["bot", "nst_engine"]
only_mutate = ["$module"]
also_copy = $(toml_list "${others[@]}")
pytest_add_cli_args_test_selection = $(toml_list $tests)
pytest_add_cli_args = ["-p", "no:cacheprovider", "-q", "-x"]
process_isolation = "forkserver"
timeout_multiplier = ${MUTATION_TIMEOUT_MULTIPLIER:-15.0}
TOML
  mutate "$module" "$tests" "$work" "$name"
}

# Runs mutmut in $work (on the named mutants only, if any), then writes the verdicts and counts to $out.
mutate() {
  local module=$1 tests=$2 work=$3 name=$4 started minutes
  shift 4
  started=$(date +%s)
  (cd "$work" && PYTHONPATH="$work/mutants" nice -n 15 "$python" -m mutmut run --max-children 1 "$@" > mutmut-run.log 2>&1) \
    || { echo "mutmut failed for $module; see $work/mutmut-run.log" >&2; tail -20 "$work/mutmut-run.log" >&2; return 1; }
  minutes=$(( ($(date +%s) - started + 30) / 60 ))
  # A survivors run leaves the first run's verdicts in NAME.txt and adds its own in NAME.survivors.txt.
  (cd "$work" && "$python" -m mutmut results --all true > "$out/$name$( (($#)) && echo .survivors).txt" 2>&1 || true)
  (cd "$work" && "$python" -m mutmut export-cicd-stats > /dev/null)
  "$python" - "$work/mutants/mutmut-cicd-stats.json" "$out/$name.json" "$module" "$minutes" "$tests" "$#" \
    "$out/$name.txt" "$out/$name.survivors.txt" <<'PY'
import json, sys
stats, target, module, minutes, tests, rerun, first_verdicts, rerun_verdicts = sys.argv[1:]
counts = json.load(open(stats))


def verdicts(path):
    """mutant → verdict, from `mutmut results --all true`."""
    return dict(line.strip().rsplit(": ", 1) for line in open(path) if line.strip().count(": ") == 1)


if int(rerun):  # the first run's survivors ran again: its counts, with those mutants' new verdicts (mutmut's own
    # counts cover every mutant, and keep or drop the others' verdicts depending on whether the selection changed)
    first = json.load(open(target))
    first = first.get("first_run", first)
    again = verdicts(rerun_verdicts)
    now = [again.get(name, "survived") for name, verdict in verdicts(first_verdicts).items() if verdict == "survived"]
    counts = {**first, "killed": first["killed"] + now.count("killed"),
              "timeout": first["timeout"] + now.count("timeout"), "survived": now.count("survived"),
              "first_run": first, "survivors_rerun_minutes": int(minutes)}
counts.update(module=module, tests=tests.split(), minutes=counts.get("minutes", int(minutes)))
tested = counts["total"] - counts["skipped"] - counts["no_tests"]
counts["killed_percent"] = round(100 * (counts["killed"] + counts["timeout"]) / max(tested, 1), 1)
json.dump(counts, open(target, "w"), indent=2)
print(f"{module}: {counts['killed']} killed, {counts['timeout']} timed out, {counts['survived']} survived, "
      f"{counts['no_tests']} with no test ({counts['killed_percent']} %), {minutes} min")
PY
}

# The last run's survivors of one module, again, with its tests refreshed from the working tree.
rerun_survivors() {
  local module=$1 tests=$2 name work survivors
  name=$(echo "$module" | tr '/' '_' | sed 's/\.py$//')
  work="$scratch/$name"
  [[ -f "$out/$name.txt" && -d "$work/mutants" ]] || { echo "no earlier run of $module to take survivors from" >&2; return 1; }
  mapfile -t survivors < <(awk -F: '/: survived$/ {gsub(/ /, "", $1); print $1}' "$out/$name.txt")
  ((${#survivors[@]})) || { echo "$module: no survivors to run again"; return 0; }
  for copy in "$work" "$work/mutants"; do
    rm -rf "$copy/tests" && cp -r tests "$copy/tests"
    # shellcheck disable=SC2086
    sed -i "s|^pytest_add_cli_args_test_selection = .*|pytest_add_cli_args_test_selection = $(toml_list $tests)|" \
      "$copy/pyproject.toml"
  done
  mutate "$module" "$tests" "$work" "$name" "${survivors[@]}"
}

action=run_module
if [[ ${1:-} == --survivors ]]; then action=rerun_survivors; shift; fi
selected=("$@") failed=()
for entry in "${modules[@]}"; do
  module=${entry%%|*}
  if ((${#selected[@]})) && [[ ! " ${selected[*]} " == *" $module "* ]]; then continue; fi
  $action "$module" "${entry#*|}" || failed+=("$module")
done
if ((${#failed[@]})); then echo "mutmut could not run for: ${failed[*]}" >&2; exit 2; fi
