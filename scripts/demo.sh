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
# --- end ci ---

step "audit log"
shipyard audit verify

printf '\ndemo finished in %s\n' "$work"
