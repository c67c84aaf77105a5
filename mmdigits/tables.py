"""Rich tables of results, one function per kind of result; the CLI prints what these return."""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.table import Table

from mmdigits.data import CONDITIONS
from mmdigits.evaluation import Report

COMPETITION = "sp24-tamu-csce-633-600-machine-learning"  # the Kaggle competition's slug


def table(title: str, columns: tuple[str, ...], left: tuple[str, ...] = ()) -> Table:
    """A table whose numeric columns are right-aligned; `left` names the text columns, which a
    narrow terminal folds onto more lines rather than cutting a model's name short."""
    made = Table(title=title)
    for column in columns:
        made.add_column(column, justify="left" if column in left else "right", overflow="fold")
    return made


def report_tables(result: Report, title: str) -> list[Any]:
    """The headline, the per-condition table (when conditions are known) and the per-digit table."""
    shown: list[Any] = [
        f"[bold]{title}[/bold]: accuracy {result.overall['accuracy']:.4f}, macro-F1 {result.overall['macro_f1']:.4f}"
    ]
    if result.conditions:
        by_condition = table("by noise condition", ("condition", "pairs", "accuracy", "macro-F1"), ("condition",))
        for name, values in result.conditions.items():
            by_condition.add_row(name, str(values["n"]), f"{values['accuracy']:.4f}", f"{values['macro_f1']:.4f}")
        shown.append(by_condition)
    per_digit = table("per digit", ("digit", "precision", "recall", "F1", "support"))
    for row in result.classes.itertuples():
        per_digit.add_row(
            str(row.digit), f"{row.precision:.4f}", f"{row.recall:.4f}", f"{row.f1:.4f}", str(row.support)
        )
    return [*shown, per_digit]


def cluster_table(scores: dict[str, dict[str, float]], dims: dict[str, int], split: str) -> Table:
    shown = table(
        f"k-means (k=10) on the {split} embeddings vs the true digits",
        ("embedding", "dims", "NMI", "ARI", "purity"),
        ("embedding",),
    )
    for name, values in scores.items():
        shown.add_row(name, str(dims[name]), *(f"{values[key]:.3f}" for key in ("nmi", "ari", "purity")))
    return shown


def analysis_tables(findings: dict[str, Any]) -> list[Any]:
    """Ablation, utilisation, robustness curves, calibration and 'does fusion hurt?'."""
    ablation = table("ablation: accuracy with an input removed", ("inputs", "accuracy"), ("inputs",))
    for name, value in findings["ablation"].items():
        ablation.add_row(name, f"{value:.4f}")
    curves = findings["robustness"]
    noisy = [name for name in curves if name != "levels"]
    robustness = table(
        "accuracy under Gaussian noise (std in units of the feature's training spread)",
        ("std", *(f"noise on {name}" for name in noisy)),
    )
    for index, level in enumerate(curves["levels"]):
        robustness.add_row(f"{level:.1f}", *(f"{curves[name][index]:.4f}" for name in noisy))
    rates = ", ".join(f"{key} {value:+.4f}" for key, value in findings["utilisation"].items())
    shown = [ablation, f"conditional utilisation (Wu et al. 2022): {rates}"]
    if "heads" in findings:
        shown.append(heads_table(findings["heads"]))
    shown.append(robustness)
    shown.append(f"expected calibration error: {findings['ece']:.4f}")
    if "fusion_hurts" in findings:
        shown.append("does fusion hurt? " + ", ".join(f"{k}: {v}" for k, v in findings["fusion_hurts"].items()))
    return shown


def heads_table(heads: dict[str, dict[str, float]]) -> Table:
    """Accuracy of each head alone and of the whole model, on all pairs and per condition."""
    columns = list(next(iter(heads.values())))
    shown = table(
        "each head alone: the image and audio experts read one input each; the whole model adds their log-odds "
        "to the fusion head's, which corrects their vote and is no classifier on its own",
        ("head", *columns),
        ("head",),
    )
    for name, accuracies in heads.items():
        shown.add_row(name, *(f"{accuracies[column]:.4f}" for column in columns))
    return shown


def models_table(rows: list[dict[str, Any]]) -> Table:
    shown = table(
        "registered models (<image>_<audio>_<fusion>)",
        ("name", "image", "audio", "fusion", "parameters"),
        ("name", "image", "audio", "fusion"),
    )
    for row in rows:
        shown.add_row(row["name"], row["image"], row["audio"], row["fusion"], f"{row['parameters']:,}")
    return shown


def bench_table(figures: dict[str, Any]) -> Table:
    """One row per model, headers on two lines so that the numbers fit a 100-column terminal;
    bench.json also holds the steady-state pairs/s and the parameter counts."""
    target = f"{figures['target_accuracy']:.0%}"
    shown = table(
        f"{figures['train_pairs']} train pairs on {figures['device']}, torch {figures['torch']}. Warm-up: the first "
        f"epoch's extra seconds; to {target}: training seconds until validation reaches it",
        (
            "model",
            "epochs",
            "train\npairs/s",
            "speed-\nup",
            "warm-\nup s",
            f"s to\n{target}",
            "total\ns",
            "val\nacc",
            "infer\npairs/s",
            "peak\nMB",
        ),
        ("model",),
    )

    def figure(value: float | None, spec: str) -> str:
        return "-" if value is None else format(value, spec)  # not measured, or the target not reached

    for name, row in figures["rows"].items():
        shown.add_row(
            name,
            str(row["epochs"]),
            f"{row['samples_per_s']:,.0f}",
            f"{row['speedup']:.2f}x",
            f"{row['warmup_s']:.1f}",
            figure(row["seconds_to_target"], ".1f"),
            f"{row['fit_seconds']:.1f}",
            f"{row['val_acc']:.4f}",
            figure(row["inference_per_s"], ",.0f"),
            f"{row['peak_memory_mb']:,.0f}",
        )
    return shown


def matrix_tables(figures: dict[str, Any], train_pairs: int) -> list[Any]:
    """One table per training profile (accuracy per test profile, overall and per condition),
    then where a fused model falls below the better unimodal baseline."""
    shown = []
    for train_profile, rows in figures["matrix"].items():
        first = next(iter(rows.values()))
        test_profiles = [key for key in first if key != "train_seconds"]
        named = first[test_profiles[0]]["conditions"]  # the conditions the test files name, in the usual order
        conditions = sorted(named, key=lambda c: CONDITIONS.index(c) if c in CONDITIONS else len(CONDITIONS))
        columns = [f"{test} {column}" for test in test_profiles for column in ("all", *conditions)]
        title = f"trained on {train_profile} ({train_pairs} pairs): test accuracy"
        made = table(title, ("model", "train s", *columns), ("model",))
        for name, cells in rows.items():
            values = [f"{cells['train_seconds']:.0f}"]
            for test in test_profiles:
                cell = cells[test]
                values.append(f"{cell['overall']['accuracy']:.4f}")
                values += [f"{cell['conditions'].get(c, {}).get('accuracy', float('nan')):.4f}" for c in conditions]
            made.add_row(name, *values)
        shown.append(made)
    deficits = figures["fusion_deficits"]
    if deficits is None:
        found = "not compared: the run has no unimodal baselines (--models all trains them too)"
    else:
        found = "; ".join(deficits) or "nowhere"
    return [*shown, f"fused below the better unimodal baseline: {found}"]


def file_table(title: str, files: list[dict[str, str]]) -> Table:
    """`data check`'s per-file rows."""
    shown = table(title, tuple(files[0]) if files else (), ("file", "dtype"))
    for row in files:
        shown.add_row(*row.values())
    return shown


def trials_table(rows: list[dict[str, Any]], title: str) -> Table:
    """`tune`'s best trials side by side, a column each: score, state, then the parameters tried, a
    row each with its name in words. Eleven parameters across did not fit 80 columns; five trials do."""
    parameters = sorted({name for row in rows for name in row["params"]})
    shown = table(title, ("", *(f"trial {row['number']}" for row in rows)), ("",))
    shown.add_row("val macro-F1", *("-" if row["value"] is None else f"{row['value']:.4f}" for row in rows))
    shown.add_row("state", *(row["state"] for row in rows))
    for name in parameters:
        shown.add_row(name.replace("_", " "), *(cell(row["params"].get(name)) for row in rows))
    return shown


def cell(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def training_lines(summary: Any) -> list[str]:
    """`train`'s result: the best epoch's validation scores (without validation: which epoch was
    kept) and the files written."""
    epoch = summary.result.best_epoch
    best = summary.result.history[epoch - 1]
    scores = ", ".join(f"{key} {best[key]:.4f}" for key in ("val_acc", "val_f1") if key in best)
    kept = (
        f"best epoch {epoch}: {scores}" if scores else f"no validation: best.pth holds the last epoch's model ({epoch})"
    )
    return [
        kept,
        f"wrote {summary.out}/best.pth, last.pth, metrics.csv, loss_acc.png, config.json",
    ]


def submission_lines(written: Any, tta: bool) -> list[str]:
    """`predict`'s result: rows written, the predicted digits' counts, the Kaggle command."""
    counts = np.bincount(written.predictions, minlength=10)
    members = f"{written.members} model{'s' * (written.members > 1)}{', TTA' if tta else ''}"
    return [
        f"wrote {written.path}: {len(written.predictions)} rows ({members})",
        "predicted digits: " + "  ".join(f"{digit}:{count}" for digit, count in enumerate(counts)),
        f"submit: kaggle competitions submit -c {COMPETITION} -f {written.path} -m mmdigits",
    ]


def featurize_lines(image: np.ndarray, audio: np.ndarray, written: list[Any]) -> list[str]:
    """`featurize`'s result: the files written (if any) and the vectors' sizes and means."""
    lines = [f"wrote {written[0]} (1, 28, 28) and {written[1]} (1, 507)"] if written else []
    return [*lines, f"image: 784 values, mean {image.mean():.3f}; audio: 507 values, mean {audio.mean():.3f}"]


def pair_lines(probabilities: np.ndarray) -> list[str]:
    """`predict --image --audio`'s result: the digit and every class probability."""
    return [
        f"digit {int(probabilities.argmax())}  (p = {float(probabilities.max()):.3f})",
        "  ".join(f"{digit}: {float(p):.3f}" for digit, p in enumerate(probabilities)),
    ]


def cv_lines(summary: dict[str, Any], out: Any) -> list[str]:
    """`cv`'s result: per fold, mean +- std, pooled out-of-fold scores, the files and the ensemble command."""
    lines = [
        f"fold {index}: accuracy {fold['accuracy']:.4f}, macro-F1 {fold['macro_f1']:.4f}"
        for index, fold in enumerate(summary["per_fold"])
    ]
    accuracy, f1, pooled = summary["accuracy"], summary["macro_f1"], summary["pooled_oof"]
    return [
        *lines,
        f"CV accuracy {accuracy['mean']:.4f} +- {accuracy['std']:.4f}, macro-F1 {f1['mean']:.4f} +- {f1['std']:.4f}; "
        f"pooled out-of-fold accuracy {pooled['accuracy']:.4f}, macro-F1 {pooled['macro_f1']:.4f}",
        f"wrote {out}/fold0..{summary['folds'] - 1}/best.pth, {out}/oof.csv, {out}/cv.json; "
        f"ensemble: mmdigits predict -c {out}",
    ]


def tune_lines(found: Any, data: str) -> list[Any]:
    """`tune`'s result: the best trials, the retrain command, the files."""
    title = f"study '{found.study}' ({found.storage}): best of {len(found.trials)} trials"
    lines: list[Any] = [trials_table(found.trials[:5], title)]  # all of them: trials.csv
    if found.best is not None:
        best = found.folder / "best.json"
        lines.append(f"best config: {best}; retrain it: mmdigits train --data {data} --config {best}")
    lines.append(f"wrote {', '.join(map(str, found.files)) or 'nothing (no trial finished)'}")
    return lines
