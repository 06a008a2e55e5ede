"""PNG plots for the CI report: metric curves, confusion matrix, ROC, calibration, fairness by group.

Pure functions over numpy arrays (no scikit-learn needed); each writes one PNG with matplotlib's Agg
backend and returns its path. Where a champion (or the base branch) is known it is drawn next to
the candidate, so the reviewer sees the change, not just the new state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.errors import require_extra

CANDIDATE_COLOR = "#1f77b4"
REFERENCE_COLOR = "#7f7f7f"
DPI = 110


@dataclass(frozen=True)
class Predictions:
    """One model's predictions on the evaluation split."""

    label: str  # e.g. "candidate penguin-species@4" or "champion @3"
    y_true: np.ndarray
    y_pred: np.ndarray
    proba: np.ndarray | None = None  # (n, k), columns in ``classes`` order
    classes: tuple[Any, ...] = ()
    groups: Mapping[str, np.ndarray] = field(default_factory=dict)


def _pyplot() -> Any:
    require_extra("matplotlib", "sklearn")
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    plt = _pyplot()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def metric_curves(series: Mapping[str, Mapping[str, Sequence[tuple[int, float]]]], path: Path) -> Path | None:
    """One panel per metric with a history: {metric: {label: [(step, value), ...]}}."""
    panels = {k: v for k, v in series.items() if any(len(points) > 1 for points in v.values())}
    if not panels:
        return None
    plt = _pyplot()
    cols = min(3, len(panels))
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, (metric, by_label) in zip(axes.flat, sorted(panels.items()), strict=False):
        for i, (label, points) in enumerate(by_label.items()):
            steps, values = zip(*sorted(points), strict=True) if points else ((), ())
            ax.plot(steps, values, label=label, color=CANDIDATE_COLOR if i == 0 else REFERENCE_COLOR,
                    linestyle="-" if i == 0 else "--", linewidth=1.6)
        ax.set_title(metric)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle("Metric curves")
    return _save(fig, path)


def confusion(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[Any]) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    matrix = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for t, p in zip(y_true, y_pred, strict=True):
        if t in index and p in index:
            matrix[index[t], index[p]] += 1
    return matrix


def _counts(ax: Any, matrix: np.ndarray) -> None:
    """A count matrix with row-normalised shading and each count written in its cell."""
    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center",
                    color="white" if share[i, j] > 0.6 else "black", fontsize=10)


def confusion_matrix(candidate: Predictions, path: Path, reference: Predictions | None = None) -> Path:
    """Counts with row-normalised shading; the reference model's matrix beside it when given."""
    plt = _pyplot()
    classes = list(candidate.classes) or sorted(set(candidate.y_true.tolist()) | set(candidate.y_pred.tolist()))
    models = [candidate] + ([reference] if reference is not None else [])
    fig, axes = plt.subplots(1, len(models), figsize=(4.6 * len(models), 4.2), squeeze=False)
    for ax, model in zip(axes.flat, models, strict=True):
        matrix = confusion(model.y_true, model.y_pred, classes)
        _counts(ax, matrix)
        ax.set_xticks(range(len(classes)), [str(c) for c in classes], rotation=30, ha="right")
        ax.set_yticks(range(len(classes)), [str(c) for c in classes])
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        accuracy = np.trace(matrix) / max(matrix.sum(), 1)
        ax.set_title(f"{model.label}\naccuracy {accuracy:.3f}", fontsize=10)
    return _save(fig, path)


def roc_points(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """False and true positive rates over every threshold, and the area under the curve."""
    order = np.argsort(-scores, kind="mergesort")
    y = y_true[order].astype(bool)
    s = scores[order]
    distinct = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tps = np.cumsum(y)[distinct]
    fps = (distinct + 1) - tps
    positives, negatives = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    tpr = np.r_[0.0, tps / positives]
    fpr = np.r_[0.0, fps / negatives]
    return fpr, tpr, float(np.trapezoid(tpr, fpr))


def roc(candidate: Predictions, path: Path, reference: Predictions | None = None) -> Path | None:
    """One-vs-rest ROC per class (binary: the positive class); the reference dashed."""
    if candidate.proba is None or not candidate.classes:
        return None
    plt = _pyplot()
    classes = list(candidate.classes)
    shown = classes[1:] if len(classes) == 2 else classes
    fig, ax = plt.subplots(figsize=(5.6, 4.8))
    palette = plt.get_cmap("tab10")
    aucs: list[float] = []
    for k, cls in enumerate(shown):
        column = classes.index(cls)
        for model, style in ((candidate, "-"), (reference, "--")):
            if model is None or model.proba is None or list(model.classes) != classes:
                continue
            fpr, tpr, auc = roc_points(np.asarray(model.y_true) == cls, model.proba[:, column])
            aucs.append(auc)
            ax.plot(fpr, tpr, style, color=palette(k), linewidth=1.6, label=f"{cls} ({model.label}) AUC {auc:.3f}")
    ax.plot([0, 1], [0, 1], ":", color=REFERENCE_COLOR, linewidth=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    if aucs and min(aucs) > 0.95:  # every curve hugs the corner: zoom in so differences show
        ax.set_xlim(-0.005, 0.3)
        ax.set_ylim(0.6, 1.01)
        ax.set_title("ROC (one vs rest), zoomed: every AUC > 0.95")
    else:
        ax.set_title("ROC (one vs rest)")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def calibration_bins(y_true: np.ndarray, y_pred: np.ndarray, confidence: np.ndarray,
                     bins: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Top-label reliability: mean confidence, accuracy and count per bin, and the ECE."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    correct = (np.asarray(y_true) == np.asarray(y_pred)).astype(float)
    conf, acc, count = np.zeros(bins), np.zeros(bins), np.zeros(bins, dtype=np.int64)
    for b in range(bins):
        mask = which == b
        count[b] = int(mask.sum())
        if count[b]:
            conf[b] = confidence[mask].mean()
            acc[b] = correct[mask].mean()
    ece = float(np.sum(count * np.abs(acc - conf)) / max(count.sum(), 1))
    return conf, acc, count, ece


def calibration(candidate: Predictions, path: Path, reference: Predictions | None = None) -> Path | None:
    """Reliability diagram of the top-label confidence, with the expected calibration error."""
    if candidate.proba is None:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    ax.plot([0, 1], [0, 1], ":", color=REFERENCE_COLOR, linewidth=1, label="perfect")
    for model, color, style in ((candidate, CANDIDATE_COLOR, "-o"), (reference, REFERENCE_COLOR, "--s")):
        if model is None or model.proba is None:
            continue
        conf, acc, count, ece = calibration_bins(model.y_true, model.y_pred, model.proba.max(axis=1))
        used = count > 0
        ax.plot(conf[used], acc[used], style, color=color, markersize=4, label=f"{model.label} (ECE {ece:.3f})")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(-0.02, 1.06)
    ax.set_xlabel("confidence (top class probability)")
    ax.set_ylabel("accuracy in the bin")
    ax.set_title("Calibration (reliability diagram)")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def group_accuracy(model: Predictions, column: str) -> dict[str, tuple[float, int]]:
    groups = np.asarray(model.groups[column]).astype(str)
    correct = np.asarray(model.y_true) == np.asarray(model.y_pred)
    return {g: (float(correct[groups == g].mean()), int((groups == g).sum())) for g in sorted(set(groups.tolist()))}


def fairness(candidate: Predictions, path: Path, reference: Predictions | None = None) -> Path | None:
    """Accuracy per group for each sensitive column; the gap between groups in the title."""
    columns = sorted(candidate.groups)
    if not columns:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(columns), figsize=(5.8 * len(columns), 4.0), squeeze=False)
    for ax, column in zip(axes.flat, columns, strict=True):
        ours = group_accuracy(candidate, column)
        theirs = group_accuracy(reference, column) if reference is not None and column in reference.groups else {}
        names = list(ours)
        x = np.arange(len(names))
        width = 0.38 if theirs else 0.6
        bars = ax.bar(x - (width / 2 if theirs else 0), [ours[n][0] for n in names], width,
                      color=CANDIDATE_COLOR, label=candidate.label)
        for bar, name in zip(bars, names, strict=True):
            ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height() + 0.01, f"{ours[name][0]:.3f}\nn={ours[name][1]}",
                    ha="center", va="bottom", fontsize=7)
        if theirs:
            ref_bars = ax.bar(x + width / 2, [theirs.get(n, (0.0, 0))[0] for n in names], width, color=REFERENCE_COLOR,
                              label=reference.label if reference else "reference")
            for bar, name in zip(ref_bars, names, strict=True):
                ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height() + 0.01, f"{theirs.get(name, (0.0, 0))[0]:.3f}",
                        ha="center", va="bottom", fontsize=7, color="#444444")
        gap = max(v for v, _ in ours.values()) - min(v for v, _ in ours.values())
        ax.set_xticks(x, names)
        ax.set_ylim(0, 1.3)
        ax.set_ylabel("accuracy")
        ax.set_title(f"accuracy by {column}: largest gap {gap:.3f}")
        ax.legend(fontsize=7, loc="upper center", ncol=2, frameon=False)
        ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _pair_confusion(title: str, rows_by_file: Mapping[str, Sequence[Mapping[str, Any]]], x: str,
                    y: Mapping[str, Sequence[str]], path: Path) -> Path | None:
    plt = _pyplot()
    panels = {f: rows for f, rows in rows_by_file.items() if rows}
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.0), squeeze=False)
    for ax, (file, rows) in zip(axes.flat, panels.items(), strict=True):
        field_y = (y.get(file) or ("predicted",))[0]
        pairs = [(str(r.get(x)), str(r.get(field_y))) for r in rows]
        classes = sorted({a for a, _ in pairs} | {b for _, b in pairs})
        matrix = confusion(np.array([a for a, _ in pairs]), np.array([b for _, b in pairs]), classes)
        _counts(ax, matrix)
        ax.set_xticks(range(len(classes)), classes)
        ax.set_yticks(range(len(classes)), classes)
        ax.set_xlabel(field_y)
        ax.set_ylabel(x)
        ax.set_title(file, fontsize=9)
    fig.suptitle(title)
    return _save(fig, path)


def data_plot(title: str, template: str, rows_by_file: Mapping[str, Sequence[Mapping[str, Any]]], x: str | None,
              y: Mapping[str, Sequence[str]], path: Path) -> Path | None:
    """A DVC data plot (dvc.yaml's top-level ``plots:``) drawn as DVC's templates would: the
    ``confusion`` templates as count matrices (one per file), the others as lines of ``y`` over
    ``x`` (the row number when there is no ``x``). Rows that are not numbers are skipped."""
    if template.startswith("confusion"):
        return _pair_confusion(title, rows_by_file, x or "actual", y, path)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 4.0))
    drawn = 0
    for file, rows in rows_by_file.items():
        fields = y.get(file) or tuple(k for k in (rows[0] if rows else {}) if k != x and k != "step")[:1]
        for field_y in fields:
            points = [(_number(r.get(x)) if x else float(i), _number(r.get(field_y))) for i, r in enumerate(rows)]
            points = [(a, b) for a, b in points if a is not None and b is not None]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, label=f"{file}: {field_y}" if len(fields) > 1 else file, linewidth=1.5)
                drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel(x or "step")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)
