"""Supply chain: ``shipyard scan`` beside picklescan and modelscan on one corpus, in one process.

The corpus is the tests' (tests/supply/corpus.py): malicious pickles (the six standard-library
gadgets, os/subprocess/exec/eval, a ``__reduce__`` chain, nested pickles in joblib and zip files),
other malicious formats (zip-slip, ONNX external data leaving the folder, a lying safetensors header,
Keras Lambda layers, a skops file holding an untrusted function) and benign model files of every
flavor. Each scanner's verdict per file: flagged, clean, or error; then detections, false positives
and files per second (best of ``n`` passes over the whole corpus). Peers run through their Python
APIs in this process (picklescan 1.0.5 and modelscan 0.8.8 are dev dependencies), so start-up
costs are not counted for anyone.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

from bench.harness import WORK


def _ours(path: Path) -> str:
    from shipyard.supply.scan import scan_path

    return "clean" if scan_path(path).clean else "flagged"


def _picklescan(path: Path) -> str:
    from picklescan.scanner import scan_directory_path, scan_file_path

    result = scan_directory_path(str(path)) if path.is_dir() else scan_file_path(str(path))
    if result.infected_files:
        return "flagged"
    return "error" if result.scan_err else "clean"


def _modelscan(path: Path) -> str:
    import logging

    from modelscan.modelscan import ModelScan

    logging.getLogger("modelscan").setLevel(logging.CRITICAL)
    result = ModelScan().scan(path)
    if result["summary"]["total_issues"]:
        return "flagged"
    return "error" if result["errors"] else "clean"


SCANNERS: dict[str, Callable[[Path], str]] = {"shipyard scan": _ours, "picklescan 1.0.5": _picklescan,
                                               "modelscan 0.8.8": _modelscan}


def _pass(scan: Callable[[Path], str], root: Path, names: list[str]) -> tuple[dict[str, str], float]:
    start = time.perf_counter()
    verdicts = {name: scan(root / name) for name in names}
    return verdicts, time.perf_counter() - start


def compare(root: Path, corpus: dict[str, bool], n: int) -> dict[str, dict[str, object]]:
    """Per scanner: verdicts, missed malicious files, flagged benign ones, errors and files/second."""
    names = sorted(corpus)
    out: dict[str, dict[str, object]] = {}
    for label, scan in SCANNERS.items():
        scan(root / names[0])   # imports outside the timing
        best, verdicts = float("inf"), {}
        for _ in range(max(1, n)):
            verdicts, seconds = _pass(scan, root, names)
            best = min(best, seconds)
        out[label] = {
            "found": sum(1 for k in names if corpus[k] and verdicts[k] == "flagged"),
            "missed": [k for k in names if corpus[k] and verdicts[k] != "flagged"],
            "false_positives": [k for k in names if not corpus[k] and verdicts[k] != "clean"],
            "errors": [k for k in names if verdicts[k] == "error"],
            "files_per_s": len(names) / best,
        }
    return out


def run(n: int) -> None:
    from tests.supply.corpus import build_corpus

    root = WORK / "supply-corpus"
    shutil.rmtree(root, ignore_errors=True)
    corpus = build_corpus(root)
    bad, good = sum(corpus.values()), len(corpus) - sum(corpus.values())
    results = compare(root, corpus, n)
    print(f"\n| scanner | malicious found (of {bad}) | benign not passed (of {good}) | scan errors | files/s | missed |")
    print("|---|---|---|---|---|---|")
    for label, r in results.items():
        missed = ", ".join(r["missed"]) or "none"   # type: ignore[arg-type]
        print(f"| {label} | {r['found']} | {len(r['false_positives'])} | {len(r['errors'])} | "  # type: ignore[arg-type]
              f"{r['files_per_s']:.0f} | {missed} |")
    for label, r in results.items():
        if r["false_positives"]:
            print(f"<!-- {label} flagged benign: {', '.join(r['false_positives'])} -->")   # type: ignore[arg-type]
    ours = results["shipyard scan"]
    met = not ours["missed"] and not ours["false_positives"] and all(
        ours["files_per_s"] > r["files_per_s"] for k, r in results.items() if k != "shipyard scan")  # type: ignore[operator]
    print(f"<!-- target: every malicious file found, no benign file flagged, faster than both: {'met' if met else 'MISSED'} -->")
