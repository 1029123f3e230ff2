"""Plots from the tidy tables: one style, one colour per method everywhere, PDF and PNG.

The palette is Okabe & Ito's colour-blind-safe set; a method keeps its colour in every
figure (assigned by sorted method name, references in grey).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from benchmark.report.curves import draw_learning_curves
from benchmark.report.figures import REFERENCE_COLOR, STYLE, method_colors, save
from benchmark.tasks import get_task, reference_rows_of_all_tasks, task_names

LINESTYLES = ("-", "--", ":", "-.")
"""One line style per dataset when a figure shows several (the colour is the method's)."""


def _label(method: str, dataset: str, datasets: list[str]) -> str:
    return method if len(datasets) == 1 else f"{method} · {dataset}"


def _panels(stats: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(dataset, task, title) of every (dataset, task) the tables hold, in task order; titles name
    the dataset only when there are several."""
    datasets = sorted(set(stats["dataset"]))
    present = set(zip(stats["dataset"], stats["task"]))
    return [
        (d, t, t if len(datasets) == 1 else f"{d} — {t}") for d in datasets for t in task_names() if (d, t) in present
    ]


def robustness_curves(frame: pd.DataFrame, task: str, metric: str, colors: dict[str, str], stem: Path) -> list[Path]:
    """Metric vs severity per corruption (one panel each), one line per method, mean ± std over seeds."""
    rows = frame[(frame["task"] == task) & (frame["metric"] == metric)]
    clean = rows[rows["corruption"] == "none"]
    measured = rows.dropna(subset=["value"])
    corruptions = [c for c in dict.fromkeys(measured["corruption"]) if c != "none"]  # n/a everywhere: no panel
    with plt.rc_context(STYLE):
        cols = min(5, max(1, len(corruptions)))
        nrows = max(1, int(np.ceil(len(corruptions) / cols)))
        figure, axes = plt.subplots(
            nrows, cols, figsize=(2.4 * cols, 2.1 * nrows + 0.8), sharey=True, squeeze=False, layout="constrained"
        )
        for ax, corruption in zip(axes.flat, corruptions):
            block = pd.concat([clean, rows[rows["corruption"] == corruption]])
            datasets = sorted(set(block["dataset"]))
            for (dataset, method), data in block.groupby(["dataset", "method"], sort=True):
                stats = data.groupby("severity")["value"].agg(["mean", "std"]).dropna(subset=["mean"])
                if len(stats) < 2:
                    continue
                ax.errorbar(
                    stats.index,
                    stats["mean"],
                    yerr=stats["std"].fillna(0),
                    label=_label(method, dataset, datasets),
                    color=colors.get(method),
                    linestyle=LINESTYLES[datasets.index(dataset) % len(LINESTYLES)],
                    marker="o",
                    markersize=3,
                    linewidth=1.2,
                    capsize=2,
                )
            ax.set_title(corruption.replace("_", " "))
            ax.set_xticks(range(0, 6))
        for ax in list(axes.flat)[len(corruptions) :]:
            ax.set_visible(False)
        for ax in axes[:, 0]:
            ax.set_ylabel(metric)
        for ax in axes[-1]:
            ax.set_xlabel("severity")
        legend: dict[str, object] = {}
        for ax in axes.flat:
            for handle, label in zip(*ax.get_legend_handles_labels()):
                legend.setdefault(label, handle)
        labels = sorted(legend)
        if labels:  # a task no method could be measured on gets an empty figure, not a crash
            figure.legend([legend[k] for k in labels], labels, loc="outside lower center", ncol=min(6, len(labels)))
        figure.suptitle(f"{task}: {metric} under corruption (mean ± std over seeds)")
        return save(figure, stem)


def drop_heatmap(drops: pd.DataFrame, task: str, stem: Path) -> list[Path]:
    """Relative drop (mean over seeds), methods × corruptions."""
    rows = drops[drops["task"] == task]
    datasets = sorted(set(rows["dataset"]))
    rows = rows.assign(row=[_label(m, d, datasets) for m, d in zip(rows["method"], rows["dataset"])])
    pivot = rows.groupby(["row", "corruption"])["relative_drop"].mean().unstack("corruption")
    with plt.rc_context({**STYLE, "axes.grid": False}):
        figure, ax = plt.subplots(figsize=(0.55 * max(4, pivot.shape[1]) + 2, 0.4 * max(3, pivot.shape[0]) + 1.2))
        image = ax.imshow(pivot.to_numpy(dtype=float), cmap="viridis", aspect="auto")
        ax.set_xticks(range(pivot.shape[1]), [c.replace("_", " ") for c in pivot.columns], rotation=60, ha="right")
        ax.set_yticks(range(pivot.shape[0]), pivot.index)
        for (i, j), value in np.ndenumerate(pivot.to_numpy(dtype=float)):
            if not np.isnan(value):
                ax.text(
                    j,
                    i,
                    f"{value:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if value > np.nanmean(pivot.to_numpy(dtype=float)) else "black",
                )
        figure.colorbar(image, ax=ax, label="relative drop (M₀ − M)/M₀")
        ax.set_title(f"{task}: relative drop per corruption")
        return save(figure, stem)


def main_metrics(stats: pd.DataFrame, colors: dict[str, str], references: tuple[str, ...], stem: Path) -> list[Path]:
    """Headline metrics per task: bars = mean over seeds, error bars = sample std; references dashed."""
    panels = _panels(stats)
    with plt.rc_context(STYLE):
        figure, axes = plt.subplots(
            1, len(panels), figsize=(4.2 * len(panels), 3.0), squeeze=False, layout="constrained"
        )
        for ax, (dataset, task, title) in zip(axes[0], panels):
            headline = get_task(task).headline_metrics
            block = stats[(stats["dataset"] == dataset) & (stats["task"] == task) & stats["metric"].isin(headline)]
            metrics = [m for m in headline if m in set(block["metric"])]
            learned = sorted(
                m
                for m in set(block["method"])
                if m not in references and block[block["method"] == m]["mean"].notna().any()
            )
            width = 0.8 / max(1, len(learned))
            for k, method in enumerate(learned):
                rows = block[block["method"] == method].set_index("metric").reindex(metrics)
                x = np.arange(len(metrics)) + (k - (len(learned) - 1) / 2) * width
                ax.bar(
                    x,
                    rows["mean"] * 100,
                    width,
                    yerr=rows["std"].fillna(0) * 100,
                    color=colors.get(method),
                    label=method,
                    capsize=2,
                    error_kw={"linewidth": 0.8},
                )
            for reference in references:
                rows = block[block["method"] == reference].set_index("metric").reindex(metrics)
                for i, value in enumerate(rows["mean"]):
                    if not np.isnan(value):
                        ax.hlines(value * 100, i - 0.45, i + 0.45, colors=REFERENCE_COLOR, linestyles="--", linewidth=1)
            ax.set_xticks(range(len(metrics)), metrics)
            ax.set_ylabel("%")
            ax.set_title(f"{title} (dashed: reference rows)")
        legend: dict[str, object] = {}
        for ax in axes.flat:
            for handle, label in zip(*ax.get_legend_handles_labels()):
                legend.setdefault(label, handle)
        if legend:
            figure.legend(list(legend.values()), list(legend), loc="outside lower center", ncol=min(6, len(legend)))
        return save(figure, stem)


def efficiency_accuracy(
    stats: pd.DataFrame, efficiency: pd.DataFrame, colors: dict[str, str], stem: Path
) -> list[Path]:
    """Headline metric vs forward MFLOPs per image–text pair, per task."""
    panels = [(d, t, title, get_task(t).headline_metrics[0], get_task(t).efficiency) for d, t, title in _panels(stats)]
    panels = [(d, t, title, m, e[0]) for d, t, title, m, e in panels if e and e[0] in efficiency]
    with plt.rc_context(STYLE):
        figure, axes = plt.subplots(
            1, max(1, len(panels)), figsize=(4.0 * max(1, len(panels)), 3.0), squeeze=False, layout="constrained"
        )
        for ax, (dataset, task, title, metric, flops) in zip(axes[0], panels):
            rows = stats[(stats["dataset"] == dataset) & (stats["task"] == task) & (stats["metric"] == metric)]
            block = rows.set_index("method")
            for _, row in efficiency.iterrows():
                method = row["method"]
                if method not in block.index or pd.isna(row.get(flops)) or pd.isna(block.loc[method, "mean"]):
                    continue
                ax.errorbar(
                    row[flops] / 1e6,
                    block.loc[method, "mean"] * 100,
                    yerr=np.nan_to_num(block.loc[method, "std"]) * 100,
                    fmt="o",
                    color=colors.get(method),
                    label=method,
                    capsize=2,
                )
                ax.annotate(
                    method,
                    (row[flops] / 1e6, block.loc[method, "mean"] * 100),
                    fontsize=7,
                    xytext=(4, 3),
                    textcoords="offset points",
                )
            ax.set_xlabel("forward MFLOPs per image–text pair")
            ax.set_ylabel(f"{metric} (%)")
            ax.set_title(title)
        return save(figure, stem)


def draw_all(tables: Path, out: Path, summary_metric: dict[str, str]) -> list[Path]:
    """Every figure of a run from its tables folder (what ``fusebench plots`` and the workflow draw)."""
    references = reference_rows_of_all_tasks()
    stats = pd.read_csv(tables / "main_stats.csv", comment="#")
    efficiency = pd.read_csv(tables / "efficiency.csv", comment="#")
    frame = pd.read_csv(tables / "robustness.csv", comment="#")
    drops = pd.read_csv(tables / "robustness_drops.csv", comment="#")
    colors = method_colors(sorted(set(stats["method"])), references)
    paths = main_metrics(stats, colors, references, out / "main_metrics")
    paths += efficiency_accuracy(stats, efficiency, colors, out / "efficiency_accuracy")
    for task, metric in summary_metric.items():
        paths += robustness_curves(frame, task, metric, colors, out / f"robustness_{task}")
        paths += drop_heatmap(drops, task, out / f"robustness_drop_{task}")
    curves = pd.read_csv(tables / "learning_curves.csv", comment="#")
    paths += draw_learning_curves(curves, summary_metric, colors, out / "learning_curves")
    return paths
