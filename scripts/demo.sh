#!/usr/bin/env bash
# `make demo`: the main job end to end on the embedded default (SQLite + local object folder),
# in a scratch copy of examples/penguins so the repository stays clean.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
work="${SHIPYARD_DEMO_DIR:-$(mktemp -d -t shipyard-demo-XXXXXX)}"
export CI="${CI:-}"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "copy examples/penguins to $work"
cp -r "$here/examples/penguins/." "$work/"
cd "$work"
git init -q && git add -A && git -c user.name=demo -c user.email=demo@example.com commit -qm "penguins example"

step "shipyard init"
# the example ships its shipyard.yaml (the pipeline); init only where there is none yet
if [ -f shipyard.yaml ]; then echo "keeping the example's shipyard.yaml"; else shipyard init; fi
step "shipyard doctor"
shipyard doctor

# --- pipeline (issue: pipeline engine) ---
step "pipeline: the stages (validate -> prepare -> train -> evaluate)"
shipyard dag
step "pipeline: shipyard run (every stage runs; output streamed with the stage name)"
shipyard run
cat metrics.json
step "pipeline: a second shipyard run executes nothing"
shipyard run
step "pipeline: change train.n_estimators; status and explain say why, only train and evaluate run"
sed -i.bak 's/n_estimators: 100/n_estimators: 50/' params.yaml && rm -f params.yaml.bak
shipyard status
shipyard explain train
shipyard run
step "pipeline: switch the param back: restored from the run cache, nothing runs"
git checkout -q params.yaml
shipyard run
# --- end pipeline ---

# --- tracking ---
step "tracking: the runs recorded (each stage run is a child of its pipeline run)"
shipyard runs list --limit 12
step "tracking: metrics diff of the two newest evaluate runs (Markdown, ready for a pull-request comment)"
pick() { shipyard runs list --filter "$1" --limit 2 --json | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r[-1]["run_id"], r[0]["run_id"])'; }
shipyard metrics diff $(pick "metrics.accuracy IS NOT NULL") --md
step "tracking: params diff of the two newest train runs"
shipyard params diff $(pick "params.n_estimators IS NOT NULL") --md --changed
step "tracking: the newest evaluate run in full"
shipyard runs show "$(pick "metrics.accuracy IS NOT NULL" | cut -d' ' -f2)"
step "tracking: the MLflow-compatible API answers in process (shipyard server --get)"
shipyard server --get "/api/2.0/mlflow/experiments/search" | head -c 400; echo
# --- end tracking ---

# --- data ---
step "data: validate the raw penguins data against data/schema.yaml"
shipyard data validate data/raw.csv --schema data/schema.yaml

step "data: a corrupted copy fails with a report of every failed check (exit 1)"
python3 - <<'PY'
import csv
rows = list(csv.DictReader(open("data/raw.csv")))
rows[0]["bill_length_mm"] = "-5"          # below the schema's minimum
rows[1]["species"] = "Penguin"            # not an allowed value
rows[2]["island"] = ""                    # null in a non-nullable column
rows[3]["year"] = "twenty"                # not an int
with open("data/corrupted.csv", "w", newline="") as out:
    w = csv.DictWriter(out, fieldnames=list(rows[0])); w.writeheader(); w.writerows(rows)
PY
if shipyard data validate data/corrupted.csv --schema data/schema.yaml; then
  echo "expected the corrupted copy to fail validation" >&2; exit 1
fi

step "data: version the raw data (content hash, schema, reference profile)"
shipyard data add data/raw.csv --name penguins
shipyard data show penguins@1

step "data: drift of a shifted copy (bill length and body mass x1.25) against penguins@1"
python3 - <<'PY'
import csv
rows = list(csv.DictReader(open("data/raw.csv")))
for r in rows:
    for c in ("bill_length_mm", "body_mass_g"):
        if r[c]:
            r[c] = str(float(r[c]) * 1.25)
with open("data/shifted.csv", "w", newline="") as out:
    w = csv.DictWriter(out, fieldnames=list(rows[0])); w.writeheader(); w.writerows(rows)
PY
shipyard data drift --reference penguins@1 --current data/shifted.csv --md
rm -f data/corrupted.csv data/shifted.csv
# --- end data ---

# --- registry and gates ---
# --- end registry and gates ---

# --- ci ---
step "CI: workflow files for GitHub Actions, GitLab CI and Jenkins"
shipyard ci init github && shipyard ci init gitlab && shipyard ci init jenkins
git add .github .gitlab-ci.yml Jenkinsfile
git -c user.name=demo -c user.email=demo@example.com commit -qm "CI workflows"
step "CI: a branch that changes a param, and its report against the base branch"
base="$(git rev-parse --abbrev-ref HEAD)"
git checkout -q -b more-trees
sed -i.bak 's/n_estimators: 100/n_estimators: 300/' params.yaml && rm -f params.yaml.bak
git -c user.name=demo -c user.email=demo@example.com commit -qam "train: 300 trees"
shipyard report --base "$base" --md
step "CI: the pull-request comment it would post (dry run, nothing is sent)"
SHIPYARD_FORGE=github SHIPYARD_REPO=acme/penguins SHIPYARD_PR=1 shipyard ci comment --dry-run | sed -n 1,12p
step "CI: share objects and run-cache entries through a remote (a folder here; s3://... in a team)"
shipyard push --remote "$work/.demo-remote"
shipyard pull --remote "$work/.demo-remote"
git checkout -q "$base"
# --- end ci ---

step "audit log"
shipyard audit verify

printf '\ndemo finished in %s\n' "$work"
