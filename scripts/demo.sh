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
shipyard init --force
step "shipyard doctor"
shipyard doctor

# --- pipeline (issue: pipeline engine) ---
step "run the example's scripts"
python src/prepare.py
python src/train.py
python src/evaluate.py
cat metrics.json
# --- end pipeline ---

# --- tracking ---
# --- end tracking ---

# --- data ---
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
