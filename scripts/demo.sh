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
# the example ships its shipyard.yaml (the pipeline): --keep adopts it and only creates .shipyard/
shipyard init --keep
step "shipyard doctor"
shipyard doctor

# --- pipeline (issue: pipeline engine) ---
step "pipeline: the stages (validate -> prepare -> train -> evaluate)"
shipyard dag
step "pipeline: shipyard run (every stage runs; output streamed with the stage name; the model is registered)"
shipyard run
cat metrics.json
step "pipeline: a second shipyard run executes nothing (and registers nothing)"
shipyard run
step "pipeline: change train.n_estimators; status and explain say why, only train and evaluate run: a new version"
sed -i.bak 's/n_estimators: 100/n_estimators: 50/' params.yaml && rm -f params.yaml.bak
shipyard status
shipyard explain train
shipyard run
step "pipeline: switch the param back: restored from the run cache, nothing runs, the model is the first version again"
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

step "auth: 'shipyard server' with auth on (the default); its first start creates an admin and prints its token once"
export SHIPYARD_PROJECT=penguins   # the project the server's routes (and the gateway's) belong to
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
srv_port="$(free_port)"
srv_url="http://127.0.0.1:$srv_port"
shipyard server --port "$srv_port" --no-monitor > server.log 2>&1 &
srv_pid=$!
trap 'kill $srv_pid 2>/dev/null || true' EXIT
# wait_for_server URL LOG: until the server answers its public health route (two minutes at most)
wait_for_server() {
python3 - "$1" "$2" <<'PY'
import sys, time, httpx
deadline = time.time() + 120
while True:
    try:
        if httpx.get(sys.argv[1] + "/health", timeout=2).status_code == 200:
            break
    except httpx.HTTPError:
        pass
    if time.time() > deadline:
        sys.exit(f"shipyard server did not answer: see {sys.argv[2]}")
    time.sleep(0.2)
PY
}
wait_for_server "$srv_url" server.log
admin_token="$(grep -m1 -oE 'shp_[0-9A-Za-z]+' server.log)"
sed -E 's/(shp_[0-9A-Za-z]{8})[0-9A-Za-z]+/\1.../' server.log   # the token, shortened for the screen

step "auth: a project editor token for the tracking calls and a viewer token, made with the CLI"
shipyard users add demo-editor
shipyard projects grant penguins demo-editor editor
token_of() { python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])'; }
editor_token="$(shipyard tokens create --user demo-editor --project penguins --expires 1d --name demo \
  --scope runs:read --scope runs:write --scope models:read --scope models:write --json | token_of)"
shipyard users add demo-viewer
shipyard projects grant penguins demo-viewer viewer
viewer_token="$(shipyard tokens create --user demo-viewer --project penguins --expires 1d --name demo \
  --scope runs:read --scope models:read --scope gateway:invoke --json | token_of)"
shipyard tokens list

step "auth: the MLflow client logs a run with MLFLOW_TRACKING_TOKEN (Bearer), unchanged otherwise"
MLFLOW_TRACKING_URI="$srv_url" MLFLOW_TRACKING_TOKEN="$editor_token" python - <<'PY'
import mlflow
mlflow.set_experiment("penguins-over-http")
with mlflow.start_run(run_name="from-the-mlflow-client") as run:
    mlflow.log_param("model", "random_forest")
    for step, loss in enumerate((0.9, 0.5, 0.3)):
        mlflow.log_metric("loss", loss, step=step)
print("logged run", run.info.run_id, "with the editor's token")
PY

step "auth: Shipyard's Python API against the server: SHIPYARD_TRACKING_URI and SHIPYARD_TOKEN"
SHIPYARD_TRACKING_URI="$srv_url" SHIPYARD_TOKEN="$editor_token" python - <<'PY'
import shipyard
with shipyard.start_run("from-the-shipyard-api"):
    shipyard.log_metric("accuracy", 0.97)
    print("logged run", shipyard.active_run().run_id)
PY

step "auth: refused calls: no token (401), a viewer's token on a write (403)"
status() { curl -s -o refused.json -w '%{http_code}' "$@"; }
code="$(status -X POST "$srv_url/api/2.0/mlflow/runs/create" -H 'Content-Type: application/json' -d '{"experiment_id": "1"}')"
echo "no token: $code $(cat refused.json)"; test "$code" = 401
code="$(status -X POST "$srv_url/api/2.0/mlflow/runs/create" -H "Authorization: Bearer $viewer_token" \
  -H 'Content-Type: application/json' -d '{"experiment_id": "1"}')"
echo "viewer's token: $code $(cat refused.json)"; test "$code" = 403
code="$(status "$srv_url/api/2.0/mlflow/experiments/search?max_results=5" -H "Authorization: Bearer $viewer_token")"
echo "viewer's token on a read: $code"; test "$code" = 200
test -n "$admin_token"
kill $srv_pid && wait $srv_pid 2>/dev/null || true
trap - EXIT
rm -f refused.json
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
version_of() { python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])'; }
step "registry: the trained model is a version already (shipyard run registered it: signature, training-data profile, run lineage)"
shipyard models register    # says "model unchanged: already penguin-species@N"
first="$(shipyard models register --json | version_of)"
shipyard models show "penguin-species@$first"
step "registry: gate penguin-species@$first (first model: thresholds, fairness by sex, latency, size, behavioural tests)"
shipyard gate "penguin-species@$first"
step "registry: make it champion (allowed: its verdict passed) and show its lineage"
shipyard models alias penguin-species champion "$first"
shipyard models lineage penguin-species@champion
step "registry: a deliberately worse candidate (one feature, logistic regression); shipyard run registers it"
sed -i.bak -e 's/^  model: random_forest.*/  model: logistic_regression/' \
           -e 's/^  features: \[.*\]/  features: [bill_depth_mm]/' params.yaml && rm -f params.yaml.bak
worse="$(shipyard run --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["registration"]["version"])')"
step "registry: penguin-species@$worse fails the comparison with the champion (paired bootstrap on the same test rows)"
if shipyard gate "penguin-species@$worse" --markdown verdict.md; then
  echo "expected penguin-species@$worse to fail its gate" >&2; exit 1
fi
cat verdict.md
step "registry: so it cannot become champion"
if shipyard models alias penguin-species champion "$worse"; then
  echo "expected the champion move to be refused" >&2; exit 1
fi
git checkout -q params.yaml && rm -f verdict.md
shipyard run
step "registry: a pickle that runs os.system on load is refused, even with --trust"
mkdir -p evil
python3 - <<'PY'
import os, pickle
class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))
open("evil/model.pkl", "wb").write(pickle.dumps(Evil()))
PY
if shipyard models register evil --path evil/ --flavor pickle --trust; then
  echo "expected the malicious pickle to be refused" >&2; exit 1
fi
test ! -e pwned.txt && rm -rf evil
step "supply: scan the trained model and the malicious pickle (allow-list; exit 1 on findings)"
shipyard scan model/
mkdir -p evil && python3 -c '
import os, pickle
class Evil:
    def __reduce__(self): return (os.system, ("echo pwned",))
open("evil/model.pkl", "wb").write(pickle.dumps(Evil()))'
if shipyard scan evil/model.pkl; then echo "expected findings" >&2; exit 1; fi
rm -rf evil
step "supply: sign new versions with a project key; the signed version is scanned, shown and served"
python3 -c '
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
key = ec.generate_private_key(ec.SECP256R1())
open(".shipyard/model-signing.pem", "wb").write(key.private_bytes(serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))'
printf 'supply:\n  signing_key: .shipyard/model-signing.pem\n' >> shipyard.yaml
signed="$(shipyard models register signed-penguins --path model/ --no-run --json | version_of)"
shipyard models show "signed-penguins@$signed"
shipyard scan "signed-penguins@$signed"
shipyard deploy "signed-penguins@$signed" --force --reason "demo: a signed version"
shipyard serve --get /v2/models/signed-penguins/ready
step "supply: a tampered copy (one flipped bit, re-packaged with the old signature) is refused when loaded"
tampered="$(python3 - <<'PY'
from shipyard import registry
from shipyard.hashing import FileEntry, Manifest
from shipyard.workspace import Workspace
ws = Workspace.discover()
with ws.store.read() as session:
    mv = registry.resolve(session, "signed-penguins@champion")
entries = {e.path: e for e in ws.objects.manifest(mv.model_oid).entries}
name = next(p for p in entries if not p.startswith("shipyard-model"))
data = bytearray(ws.objects.get_bytes(entries[name].oid)); data[len(data) // 2] ^= 1
entries[name] = FileEntry(name, ws.objects.put_bytes(bytes(data)), len(data))
oid = ws.objects.put_manifest(Manifest(tuple(sorted(entries.values(), key=lambda e: e.path))))
with ws.store.write() as session:
    print(registry.register(session, "signed-penguins", model_oid=oid, flavor="sklearn").version)
PY
)"
if shipyard gate "signed-penguins@$tampered"; then echo "expected the tampered version to be refused" >&2; exit 1; fi
step "registry: the model card of the champion"
shipyard models card penguin-species@champion
shipyard models list
# --- end registry and gates ---

# --- gateway ---
step "gateway: the champion behind 'shipyard serve', a challenger rolled out as a canary"
gw_model="$(python3 -c 'import yaml; print((yaml.safe_load(open("shipyard.yaml")).get("model") or {}).get("name") or "penguins")')"
cp shipyard.yaml .shipyard-yaml.before-gateway
cat >> shipyard.yaml <<'YAML'
deploy:                      # fast steps for the demo; the defaults are 60 s intervals and 200 samples
  strategy: canary
  steps: [25, 50, 100]
  interval: 1s
  min_samples: 40
  rollback_when: {error_rate: "> 0.01", prediction_psi: "> 0.5"}
  candidate_timeout_ms: 2000 # a busy CI box must not turn a slow first call into a candidate error
serve:
  auth: token                # predictions need a token with gateway:invoke on the project
YAML
register() {  # register the model folder $1 as the next version; prints the version number
  shipyard models register "$gw_model" --path "$1" --no-run --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])'
}
if ! shipyard models show "$gw_model@champion" > /dev/null 2>&1; then   # no registry section ran
  shipyard deploy "$gw_model@$(register model/)" --force --reason "demo: first version of the model"
fi
gw_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
shipyard serve --port "$gw_port" > gateway.log 2>&1 &
gw_pid=$!
trap 'kill $gw_pid 2>/dev/null || true' EXIT
gw_auth="Authorization: Bearer $viewer_token"   # the viewer's token holds gateway:invoke and models:read
drive() {  # send penguins rows until the rollout of $1 is finished; report client-side failures
  GW_TOKEN="$viewer_token" python - "$gw_port" "$gw_model" <<'PY'
import asyncio, csv, json, os, subprocess, sys, time
import httpx
port, model = sys.argv[1], sys.argv[2]
auth = {"Authorization": "Bearer " + os.environ["GW_TOKEN"]}
rows = [{k: (float(v) if k not in ("species", "island", "sex") else v) for k, v in r.items()
         if k != "species" and v != ""} for r in csv.DictReader(open("data/raw.csv"))]
rows = [r for r in rows if len(r) == 7]
url = f"http://127.0.0.1:{port}"
deadline = time.time() + 120
while time.time() < deadline:  # the champion (and any candidate) loaded and routed
    try:
        if httpx.get(f"{url}/v2/models/{model}/ready", headers=auth).status_code == 200:
            break
    except httpx.HTTPError:
        pass
    time.sleep(0.3)
def state():
    out = subprocess.run(["shipyard", "rollout", "status", model, "--json", "--limit", "1"], capture_output=True, text=True)
    return json.loads(out.stdout)[0]["state"]
async def main():
    sent, failed, versions = 0, 0, {}
    # idle connections expire on the client (2 s) before uvicorn closes them (5 s): a request never
    # races the server's close of a connection that waited while the rollout status was read
    limits = httpx.Limits(keepalive_expiry=2.0)
    async with httpx.AsyncClient(base_url=url, timeout=30, headers=auth, limits=limits) as client:
        start = time.time()
        while time.time() - start < 120:
            batch = await asyncio.gather(*[client.post(f"/v1/models/{model}:predict",
                                                       json={"dataframe_records": [rows[(sent + i) % len(rows)]]})
                                           for i in range(16)])
            for r in batch:
                sent += 1
                if r.status_code != 200:
                    failed += 1
                    if failed == 1:
                        print(f"first failure: {r.status_code} {r.text[:300]}")
                versions[r.headers.get("x-shipyard-version")] = versions.get(r.headers.get("x-shipyard-version"), 0) + 1
            if sent % 160 == 0 and state() in ("promoted", "rolled_back", "aborted"):
                break
    print(f"sent {sent} requests: {failed} failed; answered by version {versions}")
    if failed:
        sys.exit(1)
asyncio.run(main())
PY
}
sed -i.bak 's/model: random_forest /model: logistic_regression /' params.yaml && rm -f params.yaml.bak
python src/train.py
good="$(register model/)"
shipyard deploy "$gw_model@$good" --strategy canary --force --reason "demo: no gates configured"
drive
row='{"dataframe_records": [{"island": "Biscoe", "bill_length_mm": 45.1, "bill_depth_mm": 14.5, "flipper_length_mm": 215, "body_mass_g": 5000, "sex": "female", "year": 2008}]}'
code="$(curl -s -o refused.json -w '%{http_code}' -X POST "http://127.0.0.1:$gw_port/invocations" -H 'Content-Type: application/json' -d "$row")"
echo "gateway without a token: $code $(cat refused.json)"; test "$code" = 401
code="$(curl -s -o refused.json -w '%{http_code}' -X POST "http://127.0.0.1:$gw_port/invocations" -H "Authorization: Bearer $editor_token" \
  -H 'Content-Type: application/json' -d "$row")"
echo "gateway with a token that lacks gateway:invoke: $code $(cat refused.json)"; test "$code" = 403
curl -s -X POST "http://127.0.0.1:$gw_port/invocations" -H "$gw_auth" -H 'Content-Type: application/json' -d "$row"; echo
rm -f refused.json
shipyard rollout status "$gw_model"
test "$(shipyard rollout status "$gw_model" --json --limit 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["state"])')" = promoted

step "gateway: a broken challenger (fails on an island it never saw) is rolled back by itself"
python - <<'PY'
import pandas as pd, skops.io as sio
from pathlib import Path
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
train = pd.read_csv("data/raw.csv").dropna()
train = train[train["island"] != "Torgersen"]   # so OneHotEncoder(handle_unknown="error") raises on it
num = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
model = make_pipeline(make_column_transformer((StandardScaler(), num),
                                              (OneHotEncoder(handle_unknown="error"), ["island", "sex"])),
                      LogisticRegression(max_iter=500)).fit(train[num + ["island", "sex"]], train["species"])
Path("broken").mkdir(exist_ok=True)
sio.dump(model, "broken/model.skops")
PY
# registration checks the model on the training sample (it would refuse this one), so register it
# without that sample: this stands for a model whose bug the training data does not reveal
cp shipyard.yaml .shipyard-yaml.with-train
sed -i.bak '/^  train: /d' shipyard.yaml && rm -f shipyard.yaml.bak
bad="$(register broken/)"
mv .shipyard-yaml.with-train shipyard.yaml
shipyard deploy "$gw_model@$bad" --strategy canary --force --reason "demo: a bad model"
drive
shipyard rollout status "$gw_model"
test "$(shipyard rollout status "$gw_model" --json --limit 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["state"])')" = rolled_back
curl -s -H "$gw_auth" "http://127.0.0.1:$gw_port/metrics" | grep -E '^shipyard_(candidate_errors|requests)_total' | head -8
kill $gw_pid && wait $gw_pid 2>/dev/null || true
trap - EXIT
mv .shipyard-yaml.before-gateway shipyard.yaml
git checkout -q -- params.yaml
rm -rf broken gateway.log
# --- end gateway ---

# --- ci ---
step "CI: workflow files for GitHub Actions, GitLab CI and Jenkins"
shipyard ci init github && shipyard ci init gitlab && shipyard ci init jenkins
git add .github .gitlab-ci.yml Jenkinsfile
git -c user.name=demo -c user.email=demo@example.com commit -qm "CI workflows"
base="$(git rev-parse --abbrev-ref HEAD)"
model="$(python3 -c 'import yaml; print((yaml.safe_load(open("shipyard.yaml")).get("model") or {}).get("name", ""))')"
if [ -n "$model" ]; then
  step "CI: shipyard ci on $base (pipeline, validation, candidate, gates, report); it becomes champion"
  shipyard ci || echo "(shipyard ci exited $?: a gate or check failed, see the report)"
  if [ -f shipyard-report/candidate ]; then
    shipyard models alias "$model" champion "$(cut -d@ -f2 shipyard-report/candidate)"
  fi
fi
step "CI: a branch that changes a param"
git checkout -q -b more-trees
sed -i.bak 's/n_estimators: 100/n_estimators: 300/' params.yaml && rm -f params.yaml.bak
git -c user.name=demo -c user.email=demo@example.com commit -qam "train: 300 trees"
if [ -n "$model" ]; then
  step "CI: shipyard ci on the branch: only the affected stages run; gates against the champion"
  shipyard ci || echo "(shipyard ci exited $?: a gate or check failed, see the report)"
  cat shipyard-report/report.md
  ls shipyard-report/plots
else
  step "CI: the branch's pipeline and report against $base (no model section in shipyard.yaml: no candidate, no gates)"
  shipyard ci --base "$base" --step validate --step run --step report
  cat shipyard-report/report.md
fi
step "CI: the pull-request comment it would post (dry run, nothing is sent)"
SHIPYARD_FORGE=github SHIPYARD_REPO=acme/penguins SHIPYARD_PR=1 shipyard ci comment --dry-run | sed -n 1,12p
step "CI: share objects and run-cache entries through a remote (a folder here; s3://... in a team)"
shipyard push --remote "$work/.demo-remote"
shipyard pull --remote "$work/.demo-remote"
git checkout -q "$base"
# --- end ci ---

# --- monitoring ---
step "monitoring: the closed loop, in its own copy of the example: drifted traffic in, a retrained and promoted model out"
loop_dir="$work/closed-loop"
mkdir -p "$loop_dir" && cp -r "$here/examples/penguins/." "$loop_dir/"
(
cd "$loop_dir"
hook_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
loop_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
export SHIPYARD_WEBHOOK_SECRET=demo-secret
python - "$hook_port" > hooks.log 2>&1 <<'PY' &
# a webhook receiver on 127.0.0.1: checks each alert's signature and prints it
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from shipyard.notify import verify_signature
class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        ok = verify_signature("demo-secret", body, self.headers["X-Shipyard-Timestamp"], self.headers["X-Shipyard-Signature"])
        event = json.loads(body)
        print(f"webhook: signature {'valid' if ok else 'INVALID'}: {event['summary']}", flush=True)
        self.send_response(200 if ok else 401); self.end_headers()
    def log_message(self, *a): pass
HTTPServer(("127.0.0.1", int(sys.argv[1])), Hook).serve_forever()
PY
hook_pid=$!
python - <<'PY'
# the golden evaluation set the gate uses: today's penguins and the shifted region, correctly labelled
import pandas as pd
raw = pd.read_csv("data/raw.csv").dropna()
gold = raw.sample(150, random_state=8).copy()
gold["bill_length_mm"] = (gold["bill_length_mm"] + 8).clip(26, 69)
gold["flipper_length_mm"] = (gold["flipper_length_mm"] + 8).clip(161, 239)
gold["body_mass_g"] = (gold["body_mass_g"] + 600).clip(2501, 6499)
pd.concat([raw, gold]).to_csv("data/golden.csv", index=False)
PY
cat >> shipyard.yaml <<YAML
model:
  name: penguins
  path: model/
  train: data/prepared/train.parquet
  eval: data/golden.csv
  target: species
  features: [bill_length_mm, bill_depth_mm, flipper_length_mm, body_mass_g, island, sex]
gates:
  - {metric: accuracy, vs: champion, max_drop: 0.02}
deploy: {strategy: canary, steps: [50, 100], interval: 1s, min_samples: 30, rollback_when: {error_rate: "> 0.5"}}
monitor:
  window_rows: 100
  every: 1s
  rules:
    - {name: drift, when: drift_share > 0.3, for: 2, severity: critical, cooldown: 10m, actions: [alert, retrain]}
  retrain: {min_interval: 0s, on_new_data: false}
notify:
  - {webhook: "http://127.0.0.1:$hook_port/hook", secret: "\${SHIPYARD_WEBHOOK_SECRET}", backoff: 100ms}
YAML
shipyard run > /dev/null    # trains and registers the first version
v="$(shipyard models register penguins --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')"
shipyard gate "penguins@$v" > /dev/null
shipyard deploy "penguins@$v" > /dev/null
echo "champion penguins@$v: trained and registered by shipyard run, gated, deployed"
shipyard serve --port "$loop_port" > gateway.log 2>&1 &
serve_pid=$!
shipyard monitor --every 1s > monitor.log 2>&1 &
monitor_pid=$!
trap 'kill $serve_pid $monitor_pid $hook_pid 2>/dev/null || true' EXIT
python - "$loop_port" <<'PY'
# traffic: in-distribution first (no alert), then new labelled data lands and traffic shifts with it;
# from here on nobody types a command: the monitor detects, alerts, retrains, gates and canaries
import json, subprocess, sys, time
import httpx, pandas as pd
url = f"http://127.0.0.1:{sys.argv[1]}"
features = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "island", "sex"]
raw = pd.read_csv("data/raw.csv")
def shifted(f):
    f = f.copy()
    f["bill_length_mm"] = (f["bill_length_mm"] + 8).clip(26, 69)
    f["flipper_length_mm"] = (f["flipper_length_mm"] + 8).clip(161, 239)
    f["body_mass_g"] = (f["body_mass_g"] + 600).clip(2501, 6499)
    return f
def send(frame, n, seed):
    rows = frame.dropna().sample(n, replace=True, random_state=seed)[features].to_dict("records")
    with httpx.Client(base_url=url, timeout=60) as client:
        for i in range(0, n, 10):
            client.post("/invocations", json={"dataframe_records": rows[i:i + 10]}).raise_for_status()
def history():
    out = subprocess.run(["shipyard", "triggers", "history", "--json"], capture_output=True, text=True)
    return json.loads(out.stdout or "[]")
def windows():
    out = subprocess.run(["shipyard", "triggers", "list", "--json"], capture_output=True, text=True)
    return out.stdout
deadline = time.time() + 180
while time.time() < deadline:
    try:
        if httpx.get(url + "/ready", timeout=5).json().get("ready"):
            break
    except (httpx.HTTPError, ValueError):
        time.sleep(0.5)
send(raw, 200, 1)
time.sleep(5)
print("in-distribution traffic: 200 requests, no alert" if not history() else "unexpected retrain!")
new = shifted(raw.dropna().sample(300, replace=True, random_state=7))
pd.concat([raw, new]).to_csv("data/raw.csv", index=False)
print("new labelled data appended to data/raw.csv; traffic shifts the same way")
start, seed = time.time(), 100
while time.time() - start < 1500:
    send(new, 50, seed)
    seed += 1
    h = history()
    if h and h[0]["state"] in ("promoted", "rolled_back", "failed", "gated_out"):
        print(f"retrain #{h[0]['id']} {h[0]['state']} after {time.time() - start:.0f} s of shifted traffic")
        break
    time.sleep(0.5)
PY
sleep 2
shipyard triggers history --timeline | sed -n 1,12p
grep -E "^webhook" hooks.log | head -8
shipyard models show penguins@champion --json | python3 -c 'import json,sys; print("champion now: penguins@%s" % json.load(sys.stdin)["version"])'
kill $serve_pid $monitor_pid $hook_pid 2>/dev/null || true
trap - EXIT
)
# --- end monitoring ---

step "sweep: the sweep shipyard.yaml declares for evaluate (train's params), briefly: 2 trials, 2 at once"
shipyard sweep evaluate --trials 2 --jobs 2 --seed 1 --name demo
shipyard sweep status demo
shipyard runs list --limit 4
step "cost: compute, storage, and the gateway's CPU per 1,000 predictions of each deployed version (cost: in shipyard.yaml)"
shipyard cost --since 1d
step "audit log"
shipyard audit verify

# --- web UI ---
step "web UI: shipyard server serves it at /, over this demo's project (auth on: log in through /login)"
ui_password="demo-$(python3 -c 'import secrets; print(secrets.token_urlsafe(9))')"
echo "$ui_password" | shipyard users passwd admin --password-stdin
ui_port="$(free_port)"
ui_url="http://127.0.0.1:$ui_port"
shipyard server --port "$ui_port" --no-monitor > ui-server.log 2>&1 &
ui_pid=$!
trap 'kill $ui_pid 2>/dev/null || true' EXIT
wait_for_server "$ui_url" ui-server.log
python3 - "$ui_url" "$admin_token" <<'PY'
import re, sys, httpx
url, token = sys.argv[1], sys.argv[2]
page = httpx.get(url + "/runs", headers={"Authorization": f"Bearer {token}"}, timeout=30)
rows = re.findall(r'class="run-row" data-run-id="([0-9a-f]+)"', page.text)
if page.status_code != 200 or not rows:
    sys.exit(f"the web UI's /runs shows no run of the demo ({page.status_code}): see ui-server.log")
print(f"/runs answers {page.status_code} with {len(rows)} of the demo's runs on its first page")
PY
if [ -n "$CI" ]; then
  kill $ui_pid && wait $ui_pid 2>/dev/null || true
  trap - EXIT
  ui_note="(stopped: CI is set)"
else
  trap - EXIT   # keep it running for you: stop it with the kill below
  ui_note="(stop it with: kill $ui_pid)"
fi
# --- end web UI ---

printf '\ndemo finished in %s\n' "$work"
printf '\nOpen the web UI: %s/ (log in as admin, password %s) %s\n' "$ui_url" "$ui_password" "$ui_note"
