"""Hyperparameter search with Optuna: TPE over the training recipe, trials pruned on their
per-epoch validation macro-F1, the study kept in a database (SQLite by default; any URL Optuna
takes, so several machines can work on one study) and continued by running the same command.

Scores come from the validation split only; the test files are never read.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from mmdigits.artifacts import ensure_folder, pyplot, save_csv, save_figure, write_json
from mmdigits.config import TrainConfig
from mmdigits.data import load_train
from mmdigits.errors import MmdigitsError, UsageError
from mmdigits.models import model_arguments
from mmdigits.runs import split_for, train_run
from mmdigits.stopping import NEVER, RunStopped, StopRequest

# Where, on what and on how much of the data a run happens, and whether its step can be recorded
# there: the study's, not part of the recipe in best.json.
MACHINE_FIELDS = ("data", "out", "device", "max_samples", "cuda_graph")


def optuna_module() -> Any:
    try:
        import optuna
    except ImportError:
        raise MmdigitsError("mmdigits tune needs Optuna: pip install 'mmdigits[tune]'") from None
    return optuna


def suggest(trial: Any, model: str, fixed: set[str]) -> dict[str, Any]:
    """The search space: every recipe knob that `fixed` (options the user set) does not hold."""
    space: dict[str, Callable[[], Any]] = {
        "lr": lambda: trial.suggest_float("lr", 5e-4, 1e-2, log=True),
        "weight_decay": lambda: trial.suggest_float("weight_decay", 1e-3, 0.2, log=True),
        "batch_size": lambda: trial.suggest_categorical("batch_size", [64, 128, 256]),
        "epochs": lambda: trial.suggest_int("epochs", 10, 40, step=5),
        "image_noise": lambda: trial.suggest_float("image_noise", 0.0, 3.0),
        "audio_noise": lambda: trial.suggest_float("audio_noise", 0.0, 2.0),
        "modality_dropout": lambda: trial.suggest_float("modality_dropout", 0.0, 0.5),
        "aux_weight": lambda: trial.suggest_float("aux_weight", 0.0, 1.0),
        "label_smoothing": lambda: trial.suggest_float("label_smoothing", 0.0, 0.2),
        "width": lambda: trial.suggest_categorical("width", [8, 16, 24, 32]),
    }
    arguments = model_arguments(model)
    if arguments.get("image") is None:
        space.pop("width")  # no image CNN to widen
    if arguments.get("fusion") == "lowrank" and arguments.get("image") and arguments.get("audio"):
        space["rank"] = lambda: trial.suggest_int("rank", 1, 16, log=True)
    return {name: draw() for name, draw in space.items() if name not in fixed}


def schedule_step(epoch: int, epochs: int) -> int:
    """The share of its schedule a trial has trained, in whole tenths (0, 10, ..., 100): the step
    the pruner compares trials at. By epoch, a one-cycle run of 30 epochs is still warming up at
    epoch 4 where one of 10 epochs is nearly done, and the pruner would cut every long trial."""
    return 10 * (10 * epoch // epochs)


@dataclass
class TuneResult:
    folder: Path
    storage: str
    study: str
    trials: list[dict[str, Any]] = field(default_factory=list)  # best first, then the rest
    best: dict[str, Any] | None = None  # the winning config, as best.json holds it
    files: list[Path] = field(default_factory=list)
    stopped_by: str = ""  # the signal that ended the study early, if one did


def run_tune(
    base: TrainConfig,
    fixed: set[str],
    trials: int,
    out: Path | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    timeout: float | None = None,
    jobs: int = 1,
    stop: StopRequest = NEVER,
    log: Callable[[str], None] = lambda message: None,
) -> TuneResult:
    """Run `trials` more trials of the study (creating it, or continuing it where it stopped),
    then write best.json, trials.csv and the plots into `out`."""
    optuna = optuna_module()
    if trials < 1 or jobs < 1:
        raise UsageError("--trials and --jobs must be at least 1")
    if timeout is not None and timeout <= 0:
        raise UsageError(f"--timeout must be a positive number of seconds, not {timeout:g}")
    if jobs > 1:  # trials side by side: one would launch work on the GPU while another records its step
        if base.cuda_graph:
            raise UsageError(
                "--cuda-graph records a step with nothing else on the GPU; --jobs runs trials side by side"
            )
        base = replace(base, cuda_graph=False)
    if base.val_fraction <= 0:
        raise UsageError("--val-fraction 0: tune scores every trial on validation; give a share above 0")
    data = load_train(Path(base.data))  # a bad folder stops here, before any study is created
    split_for(base, data)  # as does a split with an empty part
    out = out or Path("runs/tune") / base.model
    if storage is None:  # the default database lives in the study folder
        storage = f"sqlite:///{ensure_folder(out).joinpath('study.db').as_posix()}"
    study_name = study_name or base.model
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(
            study_name=study_name,
            storage=storage,
            load_if_exists=True,
            direction="maximize",
            sampler=optuna.samplers.TPESampler(seed=base.seed),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=30),  # steps: schedule_step
        )
    except Exception as error:  # SQLAlchemy and the database drivers raise many types; each means the same
        reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise UsageError(f"--storage {storage}: cannot open the study's database ({reason})") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks metric names experimental
        study.set_metric_names(["validation macro-F1"])  # the plots' axis label
    log(f"study '{study_name}' in {storage}: {len(study.trials)} earlier trials; {trials} more")

    def objective(trial: Any) -> float:
        config = replace(base, **suggest(trial, base.model, fixed), out=str(out / f"trial{trial.number}"))

        reported: set[int] = set()

        def report(row: dict[str, float], fit: Any) -> None:
            step = schedule_step(int(row["epoch"]), fit.epochs)
            if step in reported:
                return
            reported.add(step)
            trial.report(row["val_f1"], step)
            if trial.should_prune():
                raise optuna.TrialPruned()

        try:
            summary = train_run(config, data=data, on_epoch=report, stop=stop)
        except RunStopped:  # Ctrl-C: the trial ends early, as a pruned one does; the study then stops
            raise optuna.TrialPruned(f"stopped by {stop.signal_name}") from None
        return summary.result.history[summary.result.best_epoch - 1]["val_f1"]

    def after_trial(study: Any, trial: Any) -> None:
        value = "-" if trial.value is None else f"{trial.value:.4f}"
        log(f"trial {trial.number}: {trial.state.name.lower()}, val macro-F1 {value}")
        if stop.requested:
            study.stop()

    study.optimize(objective, n_trials=trials, timeout=timeout, n_jobs=jobs, callbacks=[after_trial])
    result = TuneResult(out, storage, study_name, stopped_by=stop.signal_name)
    write_study(study, base, result)
    return result


def write_study(study: Any, base: TrainConfig, result: TuneResult) -> None:
    """best.json (the winning config), trials.csv, and the history and importance plots."""
    finished = [trial for trial in study.trials if trial.value is not None]
    ranked = sorted(finished, key=lambda trial: -trial.value) + [t for t in study.trials if t.value is None]
    result.trials = [
        {"number": t.number, "value": t.value, "state": t.state.name.lower(), "params": t.params} for t in ranked
    ]
    if not study.trials:
        return
    result.files.append(save_csv(result.folder / "trials.csv", trials_frame(study.trials)))
    complete = [trial for trial in finished if trial.state.name == "COMPLETE"]
    if not complete:
        return
    winner = max(complete, key=lambda trial: trial.value)
    config = replace(base, **winner.params).to_dict()
    result.best = {key: value for key, value in config.items() if key not in MACHINE_FIELDS}
    result.files.append(write_json(result.folder / "best.json", result.best))
    result.files += plot_study(study, result.folder)


def trials_frame(trials: list[Any]) -> pd.DataFrame:
    """One row per trial with stable column names (Optuna's own frame renames its value column
    after the metric): number, state, val_macro_f1, trained_percent (of the trial's schedule), seconds, params."""
    rows = []
    for trial in trials:
        seconds = (trial.datetime_complete - trial.datetime_start).total_seconds() if trial.datetime_complete else None
        row = {"number": trial.number, "state": trial.state.name, "val_macro_f1": trial.value}
        row |= {"trained_percent": trial.last_step, "seconds": seconds}
        rows.append(row | {f"params_{name}": value for name, value in trial.params.items()})
    return pd.DataFrame(rows)


def plot_study(study: Any, folder: Path) -> list[Path]:
    """Optuna's optimisation history and (with two or more finished trials) parameter importances."""
    from optuna.visualization import matplotlib as plots

    pyplot()  # the headless backend before Optuna draws
    written = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        written.append(save_figure(plots.plot_optimization_history(study).figure, folder / "history.png"))
        complete = [trial for trial in study.trials if trial.state.name == "COMPLETE"]
        if len(complete) >= 2 and complete[0].params:
            try:
                axis = plots.plot_param_importances(study)
            except (RuntimeError, ValueError):  # e.g. every trial drew the same values
                return written
            written.append(save_figure(axis.figure, folder / "importances.png"))
    return written
