"""The data commands as a user runs them, on a scratch copy of the penguins example."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.conftest import run_cli


def corrupt(src: Path, dest: Path) -> None:
    rows = list(csv.DictReader(src.open()))
    rows[0]["bill_length_mm"] = "-5"
    rows[1]["species"] = "Penguin"
    rows[2]["island"] = ""
    rows[3]["year"] = "twenty"
    with dest.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def shift(src: Path, dest: Path, columns: tuple[str, ...], factor: float) -> None:
    rows = list(csv.DictReader(src.open()))
    for row in rows:
        for col in columns:
            if row[col]:
                row[col] = str(float(row[col]) * factor)
    with dest.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


@pytest.mark.slow
def test_validate_the_example_and_a_corrupted_copy(penguins: Path) -> None:
    ok = run_cli("data", "validate", "data/raw.csv", "--schema", "data/schema.yaml", cwd=penguins)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "all" in ok.stdout and "checks passed (344 rows)" in ok.stdout
    corrupt(penguins / "data" / "raw.csv", penguins / "data" / "bad.csv")
    bad = run_cli("data", "validate", "data/bad.csv", "--schema", "data/schema.yaml", cwd=penguins)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    for expected in ("min\tbill_length_mm\t1\tvalues below the minimum 25\t1: -5.0",
                     "allowed\tspecies\t1", "'Penguin'", "not_null\tisland\t1", "dtype\tyear\t1", "'twenty'"):
        assert expected in bad.stdout, bad.stdout
    assert "checks failed" in bad.stderr
    as_json = run_cli("data", "validate", "data/bad.csv", "--schema", "data/schema.yaml", "--json", cwd=penguins)
    data = json.loads(as_json.stdout)
    assert as_json.returncode == 1 and data["passed"] is False
    assert {f["check"] for f in data["failures"]} == {"min", "allowed", "not_null", "dtype"}
    md = run_cli("data", "validate", "data/bad.csv", "--schema", "data/schema.yaml", "--md", cwd=penguins)
    assert md.stdout.startswith("### ❌ Data validation") and "| allowed | species | 1 |" in md.stdout


@pytest.mark.slow
def test_infer_then_validate_round_trip(penguins: Path) -> None:
    inferred = run_cli("data", "infer", "data/raw.csv", cwd=penguins)
    assert inferred.returncode == 0, inferred.stderr
    assert "allowed: [Adelie, Chinstrap, Gentoo]" in inferred.stdout
    (penguins / "inferred.yaml").write_text(inferred.stdout)
    check = run_cli("data", "validate", "data/raw.csv", "--schema", "inferred.yaml", "--pii", cwd=penguins)
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.slow
def test_bad_inputs_exit_2_with_clear_errors(penguins: Path) -> None:
    (penguins / "empty.csv").write_text("")
    r = run_cli("data", "validate", "empty.csv", "--schema", "data/schema.yaml", cwd=penguins)
    assert r.returncode == 2 and "empty.csv: the file is empty" in r.stderr
    (penguins / "latin.csv").write_bytes("species\nAd\xe9lie\n".encode("latin-1"))
    r = run_cli("data", "infer", "latin.csv", cwd=penguins)
    assert r.returncode == 2 and "latin.csv:2: the file is not UTF-8" in r.stderr
    (penguins / "head.csv").write_text("a,b\n")
    r = run_cli("data", "infer", "head.csv", cwd=penguins)
    assert r.returncode == 2 and "header but no data rows" in r.stderr
    (penguins / "s.yaml").write_text("columns:\n  species: {dtyp: string}\n")
    r = run_cli("data", "validate", "data/raw.csv", "--schema", "s.yaml", cwd=penguins)
    assert r.returncode == 2 and "s.yaml:2:" in r.stderr and "unknown key" in r.stderr
    r = run_cli("data", "validate", "data/raw.csv", "--schema", "s.yaml", "--json", "--md", cwd=penguins)
    assert r.returncode == 2 and "choose one" in r.stderr


@pytest.mark.slow
def test_versions_drift_and_lineage(penguins: Path) -> None:
    if not (penguins / "shipyard.yaml").exists():
        assert run_cli("init", cwd=penguins).returncode == 0
    added = run_cli("data", "add", "data/raw.csv", "--name", "penguins", cwd=penguins)
    assert added.returncode == 0 and "added penguins@1" in added.stdout, added.stdout + added.stderr
    again = run_cli("data", "add", "data/raw.csv", "--name", "penguins", cwd=penguins)
    assert "unchanged" in again.stdout and "penguins@1" in again.stdout
    listed = json.loads(run_cli("data", "list", "--json", cwd=penguins).stdout)
    assert [v["ref"] for v in listed] == ["penguins@1"] and listed[0]["rows"] == 344
    show = run_cli("data", "show", "penguins@1", cwd=penguins)
    assert show.returncode == 0 and "bill_length_mm" in show.stdout and "inferred schema" in show.stdout

    shift(penguins / "data" / "raw.csv", penguins / "data" / "shifted.csv", ("bill_length_mm", "body_mass_g"), 1.25)
    drift = run_cli("data", "drift", "--reference", "penguins@1", "--current", "data/shifted.csv", "--json", cwd=penguins)
    assert drift.returncode == 0, drift.stderr
    report = json.loads(drift.stdout)
    assert report["drifted_columns"] == ["bill_length_mm", "body_mass_g"]
    same = run_cli("data", "drift", "--reference", "penguins@1", "--current", "data/raw.csv", "--fail-on-drift",
                   cwd=penguins)
    assert same.returncode == 0, same.stdout + same.stderr
    assert "no dataset drift: 0 of 8 columns drifted" in same.stdout
    html = run_cli("data", "drift", "-r", "penguins@1", "-c", "data/shifted.csv", "--html", cwd=penguins)
    assert html.stdout.startswith("<!doctype html>") and "<td>bill_length_mm</td>" in html.stdout
    md = run_cli("data", "drift", "-r", "penguins@1", "-c", "data/shifted.csv", "--md", cwd=penguins)
    assert "| bill_length_mm | numeric | wasserstein |" in md.stdout and "❌ DRIFT" in md.stdout

    (penguins / "data" / "raw.csv").write_text((penguins / "data" / "shifted.csv").read_text())
    assert "added penguins@2" in run_cli("data", "add", "data/raw.csv", "--name", "penguins", cwd=penguins).stdout
    diff = json.loads(run_cli("data", "diff", "penguins@1", "penguins@2", "--json", cwd=penguins).stdout)
    verdicts = {c["column"]: c["verdict"] for c in diff["columns"]}
    assert verdicts["bill_length_mm"] == "DRIFT" and verdicts["species"] == "NO"

    used = run_cli("data", "used-by", "penguins@1", cwd=penguins)
    assert used.returncode == 0 and "no model version was trained from it" in used.stdout
    missing = run_cli("data", "show", "penguin@1", cwd=penguins)
    assert missing.returncode == 2 and "no dataset called 'penguin'" in missing.stderr and "penguins" in missing.stderr


@pytest.mark.slow
def test_profile_file_as_reference(penguins: Path) -> None:
    r = run_cli("data", "profile", "data/raw.csv", "--out", "ref.json", cwd=penguins)
    assert r.returncode == 0 and "344 rows, 8 columns" in r.stdout
    shift(penguins / "data" / "raw.csv", penguins / "cur.csv", ("flipper_length_mm",), 1.3)
    d = run_cli("data", "drift", "-r", "ref.json", "-c", "cur.csv", "--fail-on-drift", cwd=penguins)
    assert d.returncode == 1 and "flipper_length_mm" in d.stderr
