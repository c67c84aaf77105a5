"""The command line: the only place that reads argv, prints results and maps errors to exit codes.

Every command parses its options, calls one function of a domain module and prints what it
returns. Training options come from TrainConfig's fields (cli_options.py); the domain modules load
on first use (`lib`), so that `mmdigits --help` is instant.
"""

from __future__ import annotations

import functools
import gc
import importlib
import inspect
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from mmdigits import cli_options as opt
from mmdigits import tables
from mmdigits.artifacts import refuse_overwrite
from mmdigits.cli_options import DEFAULT_CHECKPOINT, with_config_options
from mmdigits.config import TrainConfig
from mmdigits.errors import MmdigitsError, UsageError
from mmdigits.reporting import console, data_warnings_as_lines, print_epoch, progress_bar, rank_zero, show, warn
from mmdigits.stopping import Stopped, stop_on_signals

SETTINGS = {"context_settings": {"help_option_names": ["-h", "--help"]}, "no_args_is_help": True}
# The app's help is main's docstring; cls: -h shown like our flags (cli_options.NoBoolHelp)
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, cls=opt.Group, **SETTINGS)
data_app = typer.Typer(help="Make and check datasets in the competition's format.", cls=opt.Group, **SETTINGS)
app.add_typer(data_app, name="data")


class Library:
    """The modules below the CLI, each imported on first use (`lib.reports.tsne_report(...)`), so
    that `mmdigits --help` does not wait for torch."""

    def __getattr__(self, name: str) -> Any:
        return importlib.import_module(f"mmdigits.{name}")


lib = Library()


def command(group: typer.Typer = app, name: str | None = None) -> Callable:
    """Register a command whose project errors become one line on stderr and an exit code (2
    usage, 130 stopped, 1 the rest; MMDIGITS_DEBUG=1 shows the traceback instead), whose
    DataWarnings become `warning:` lines, and whose --data, if typed, is checked first."""

    def register(function: Callable) -> Callable:
        signature = inspect.signature(function, eval_str=True)
        takes_context = "context" in signature.parameters

        @functools.wraps(function)
        def friendly(*args: Any, context: typer.Context | None = None, **kwargs: Any) -> Any:
            try:  # context: None where another command calls this one (demo), with --data its own
                if context is not None and "data" in opt.explicit_options(context, kwargs):
                    opt.refuse_missing_data(kwargs["data"])
                if takes_context:
                    kwargs["context"] = context
                with data_warnings_as_lines():
                    return function(*args, **kwargs)
            except (MmdigitsError, KeyboardInterrupt) as error:
                if os.environ.get("MMDIGITS_DEBUG"):
                    raise
                stopped = isinstance(error, (Stopped, KeyboardInterrupt))
                if not stopped:
                    typer.echo(f"Error: {error}", err=True)
                elif rank_zero():  # every rank stops alike; one says so
                    typer.echo(f"Interrupted: {str(error) or 'quit at once'}", err=True)
                raise typer.Exit(130 if stopped else 2 if isinstance(error, UsageError) else 1) from None

        if not takes_context:  # typer passes the context to a parameter of that type
            context = inspect.Parameter(
                "context", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=typer.Context
            )
            friendly.__signature__ = signature.replace(parameters=[*signature.parameters.values(), context])
        return group.command(name, cls=opt.Command)(friendly)

    return register


@app.callback()
def main(version: opt.Version = False) -> None:
    """Multimodal digit classification: handwritten image + spoken digit, trained together."""


def run_training(
    config: TrainConfig, resume: Path | None = None, overwrite: bool = False, given: frozenset[str] = frozenset()
) -> None:
    """Train with a progress bar and one row per epoch; SIGINT/SIGTERM stop between batches."""
    config, payload = lib.runs.plan_run(config, resume, overwrite, given)
    if payload is not None:
        console.print(f"resuming {config.model} from {resume} after epoch {payload['epoch']}")

    with stop_on_signals(announce=rank_zero()) as stop, progress_bar("training") as advance:
        summary = lib.runs.train_run(
            config, payload, log=console.print, on_epoch=print_epoch, on_batch=advance, stop=stop
        )
    if summary.is_main:
        show(*tables.training_lines(summary))


@command()
@with_config_options()
def train(
    config: TrainConfig,
    given: set[str],
    resume: Annotated[
        Optional[Path],
        typer.Option(
            help="Continue from a run's last.pth, in its folder, with its options (--data, --device may change)."
        ),
    ] = None,
    overwrite: opt.Overwrite = False,
) -> None:
    """Train a model on x_train_wr.npy / x_train_sp.npy / y_train.csv; writes best.pth and last.pth."""
    run_training(config, resume, overwrite, frozenset(given))


@command()
def predict(
    checkpoint: opt.Checkpoints = [DEFAULT_CHECKPOINT],  # noqa: B006 (typer reads the default)
    data: opt.Data = Path("."),
    out: Annotated[Path, typer.Option(help="Submission CSV to write.")] = Path("submission.csv"),
    label_column: Annotated[str, typer.Option(help="Name of the prediction column.")] = "label",
    probs: Annotated[Optional[Path], typer.Option(help="Also write class probabilities here.")] = None,
    tta: opt.Tta = False,
    image: Annotated[Optional[Path], typer.Option(help="Classify one picture (PNG/JPEG) instead...")] = None,
    audio: Annotated[Optional[Path], typer.Option(help="...with one recording (WAV).")] = None,
    device: opt.Device = "auto",
) -> None:
    """Predict the test set (x_test_wr.npy, x_test_sp.npy) into a Kaggle submission CSV."""
    if (image is None) != (audio is None):
        raise UsageError("--image and --audio go together: give both, or neither to predict the test set")
    if image is not None:
        show(*tables.pair_lines(lib.predicting.predict_pair(checkpoint, image, audio, device, tta)))
    else:
        written = lib.predicting.predict_test(checkpoint, data, out, label_column, probs, tta, device)
        show(*tables.submission_lines(written, tta))
        warn(written.warnings)


@command()
def featurize(
    image: Annotated[Path, typer.Option(help="A picture of one digit (PNG/JPEG).")],
    audio: Annotated[Path, typer.Option(help="A recording of one spoken digit (WAV).")],
    out: Annotated[Optional[Path], typer.Option(help="Folder to write x_test_wr.npy / x_test_sp.npy.")] = None,
    overwrite: opt.Overwrite = False,
) -> None:
    """Turn a real picture and recording into the competition's 784 and 507 vectors."""
    vectors = lib.features.featurize_pair(image, audio)
    written = lib.features.write_pair(out, *vectors, overwrite=overwrite) if out is not None else []
    show(*tables.featurize_lines(*vectors, written))


@command()
def tsne(
    checkpoint: opt.Checkpoint = DEFAULT_CHECKPOINT,
    data: opt.Data = Path("."),
    split: Annotated[str, typer.Option(help="val (the checkpoint's own validation split), test or train.")] = "val",
    samples: Annotated[int, typer.Option(help="Points to embed (a random subset).")] = 5000,
    out: Annotated[Path, typer.Option(help="Folder for the PNGs and coordinates CSV.")] = Path("plots"),
    seed: Annotated[int, typer.Option(help="Seed for the subset, t-SNE and k-means.")] = 0,
    labels: opt.Labels = None,
    device: opt.Device = "auto",
    overwrite: opt.Overwrite = False,
) -> None:
    """t-SNE maps and k-means clusters of the image, audio and fused embeddings."""
    maps = lib.reports.tsne_report(
        checkpoint, data, split, samples, out, seed, labels, device, overwrite, log=console.print
    )
    if maps.scores:
        show(tables.cluster_table(maps.scores, maps.dims, split))
    show(f"wrote {', '.join(map(str, maps.files))}")


@command()
def evaluate(
    checkpoint: opt.Checkpoints = [DEFAULT_CHECKPOINT],  # noqa: B006
    data: opt.Data = Path("."),
    labels: Annotated[
        Optional[Path], typer.Option(help="row_id,label[,condition] CSV; default: y_test.csv in --data.")
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder for confusion_matrix.png and per_class.csv.")] = Path("evaluation"),
    tta: opt.Tta = False,
    device: opt.Device = "auto",
    overwrite: opt.Overwrite = False,
) -> None:
    """Score a model (or ensemble) on labelled test files: accuracy, macro F1, per class and condition."""
    result, title, warnings = lib.reports.evaluate_report(checkpoint, data, labels, out, tta, device, overwrite)
    show(*tables.report_tables(result, title), f"wrote {out / 'confusion_matrix.png'} and {out / 'per_class.csv'}")
    warn(warnings)


@command()
def analyze(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", "-c", help="The model to analyse.")] = DEFAULT_CHECKPOINT,
    data: opt.Data = Path("."),
    labels: Annotated[Optional[Path], typer.Option(help="Analyse the labelled test set instead of validation.")] = None,
    image_model: Annotated[Optional[Path], typer.Option(help="Image-only checkpoint: does fusion hurt?")] = None,
    audio_model: Annotated[Optional[Path], typer.Option(help="Audio-only checkpoint: does fusion hurt?")] = None,
    out: Annotated[Path, typer.Option(help="Report folder.")] = Path("analysis"),
    device: opt.Device = "auto",
    overwrite: opt.Overwrite = False,
) -> None:
    """Ablations, modality utilisation, each head alone, noise robustness, calibration, errors: does fusion pay?"""
    found = lib.reports.analyze_report(
        checkpoint, data, labels, image_model, audio_model, out, device, overwrite, console.print
    )
    title = f"{found.findings['model']} on {found.findings['evaluated_on']}"
    show(*tables.report_tables(found.summary, title), *tables.analysis_tables(found.findings))
    show(f"wrote {out}/: {', '.join(lib.reports.ANALYZE_FILES)}")


@command()
def models() -> None:
    """List the registered models with their parameter counts."""
    show(tables.models_table(lib.models.describe_models()))


@command()
def bench(
    models: Annotated[str, typer.Option(help="Comma-separated names, or 'all' for the four main models.")] = "all",
    samples: Annotated[int, typer.Option(help="Generated training pairs (validation: a sixth as many).")] = 60000,
    epochs: Annotated[int, typer.Option(help="Epochs per model.")] = 2,
    device: opt.Device = "auto",
    compile: Annotated[
        bool, opt.flag_option("--compile", help="torch.compile our models (CUDA graphs on a GPU).")
    ] = False,
    cuda_graph: Annotated[
        Optional[bool],
        opt.flag_option(
            "--cuda-graph/--no-cuda-graph",
            help="Record our models' training step as one CUDA graph; default: on for one CUDA GPU without --compile.",
        ),
    ] = None,
    reference_epochs: Annotated[
        int, typer.Option(help="Epochs of the reference loop; 0: as --epochs (its speed is steady after one).")
    ] = 0,
    out: Annotated[Path, typer.Option(help="JSON file for the figures.")] = Path("bench.json"),
    overwrite: opt.Overwrite = False,
) -> None:
    """Training/inference speed of our models beside the competition's reference loop, same run."""
    step = {"compile": compile, "cuda_graph": cuda_graph}  # None: the run's own choice
    figures = lib.bench.bench_generated(
        lib.models.parse_models(models), samples, epochs, device, step, out, reference_epochs, console.print, overwrite
    )
    show(tables.bench_table(figures), f"wrote {out}")


@command()
@with_config_options(exclude=("data", "model", "out", "self_train"))  # its test sets are made, not in a folder
def matrix(
    config: TrainConfig,
    models: Annotated[str, typer.Option(help="Comma-separated names; all: the main four + unimodal ones.")] = "all",
    train_pairs: Annotated[int, typer.Option("--train", help="Training pairs generated per profile.")] = 5600,
    test_pairs: Annotated[int, typer.Option("--test", help="Test pairs per profile.")] = 2000,
    runs: Annotated[Path, typer.Option(help="Where the runs' checkpoints go.")] = Path("runs/matrix"),
    out: Annotated[Path, typer.Option(help="JSON file for the figures.")] = Path("matrix.json"),
    overwrite: opt.Overwrite = False,
) -> None:
    """Train on each data profile, test on each, per noise condition: how the recipe travels."""
    names = lib.models.parse_models(models, [*lib.models.MAIN_MODELS, *lib.generalisation.UNIMODAL])
    figures = lib.generalisation.run_matrix(names, config, train_pairs, test_pairs, runs, out, console.print, overwrite)
    show(*tables.matrix_tables(figures, train_pairs), f"wrote {out}")


@command()
@with_config_options(exclude=("model", "out"))
def compare(
    config: TrainConfig,
    models: Annotated[str, typer.Option(help="Comma-separated model names, or 'all' for the four main ones.")] = "all",
    seeds: Annotated[int, typer.Option(help="Seeds per model (0..N-1); the split stays the same.")] = 3,
    out: Annotated[Path, typer.Option(help="Where the table and per-model curves go.")] = Path("othermodels"),
    runs: Annotated[Path, typer.Option(help="Where the runs' checkpoints go.")] = Path("runs/compare"),
    overwrite: opt.Overwrite = False,
) -> None:
    """Train several models x seeds on one split; write othermodels/README.md and curves."""
    command = "mmdigits " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["compare"] else "mmdigits compare"
    table = lib.compare.compare_models(
        lib.models.parse_models(models), seeds, config, out, runs, command, console.print, overwrite
    )
    show(table.read_text())


@command()
@with_config_options(exclude=("out",))
def cv(
    config: TrainConfig,
    folds: Annotated[int, typer.Option(help="Number of folds.")] = 5,
    out: Annotated[Path, typer.Option(help="Folder for fold<k>/ runs, oof.csv and cv.json.")] = Path("runs/cv"),
    overwrite: opt.Overwrite = False,
) -> None:
    """k-fold cross-validation: a checkpoint per fold and out-of-fold predictions; then
    `mmdigits predict -c runs/cv` averages the folds into one submission."""
    show(*tables.cv_lines(lib.crossval.cross_validate(config, folds, out, console.print, overwrite), out))


@command()
@with_config_options(exclude=("out",))
def tune(
    config: TrainConfig,
    given: set[str],
    trials: Annotated[int, typer.Option(help="Trials to run now, added to the study's earlier ones.")] = 20,
    timeout: Annotated[Optional[float], typer.Option(help="Start no trial after this many seconds.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Study folder (default: runs/tune/<model>).")] = None,
    storage: Annotated[Optional[str], typer.Option(help="Optuna DB URL (default: <out>/study.db).")] = None,
    study: Annotated[Optional[str], typer.Option(help="Study name (default: the model name).")] = None,
    jobs: Annotated[int, typer.Option(help="Trials run in parallel threads on this machine.")] = 1,
) -> None:
    """Search the recipe with Optuna, pruned on validation macro-F1; options you give are held fixed.
    Writes best.json for `train --config`; the same command again continues the study."""
    with stop_on_signals(announce=rank_zero()) as stop:
        found = lib.tuning.run_tune(config, given, trials, out, storage, study, timeout, jobs, stop, console.print)
    show(*tables.tune_lines(found, config.data))
    if found.stopped_by:
        raise Stopped(f"by {found.stopped_by}: the finished trials are kept; the same command continues the study")


@command(data_app, "make")
def data_make(
    out: Annotated[Path, typer.Option(help="Folder to write the competition files into.")] = Path("mmdigits-data"),
    train: Annotated[Optional[int], typer.Option(help="Training pairs (default: shipped 60000, foreign 5600).")] = None,
    test: Annotated[Optional[int], typer.Option(help="Test pairs (default: shipped 10000, foreign 2000).")] = None,
    seed: Annotated[int, typer.Option(help="Seed for the whole dataset.")] = 0,
    profile: Annotated[
        str, typer.Option(help="shipped (the demo's) or foreign (other writers, voices, units).")
    ] = "shipped",
    overwrite: opt.Overwrite = False,
) -> None:
    """Write a realistic dataset: real handwriting, synthesised voices, four noise conditions."""
    with console.status(f"making the {profile} profile..."):
        written = lib.profiles.make_dataset(out, train, test, seed, profile, overwrite)
    show(f"wrote {', '.join(path.name for path in written)} to {out}/ ({profile} profile)")


@command(data_app, "check")
def data_check(data: opt.Data = Path(".")) -> None:
    """Shape, dtype, range and spread per file; label balance, duplicated clips, train/test overlap and shift."""
    report = lib.datacheck.check_folder(data)
    show(tables.file_table(f"{data}/", report.files), *report.facts, *(f"warning: {w}" for w in report.warnings))
    show("no warnings" if not report.warnings else f"{len(report.warnings)} warning(s)")


@command()
@with_config_options(exclude=("data", "out"), defaults={"epochs": 10})
def demo(
    config: TrainConfig,
    out: Annotated[Path, typer.Option(help="Folder for the data, run, submission and plots.")] = Path("mmdigits-demo"),
    train_pairs: Annotated[int, typer.Option("--train", help="Training pairs to generate.")] = 16000,
    test_pairs: Annotated[int, typer.Option("--test", help="Test pairs to generate.")] = 2000,
    overwrite: opt.Overwrite = False,
) -> None:
    """Make data, train, predict, draw t-SNE maps and score the test set: the whole tool in one go."""
    started = time.perf_counter()
    data, run = out / "data", out / "run"
    config = replace(config, data=str(data), out=str(run))
    refuse_overwrite(run, lib.runs.RUN_FILES, overwrite, "a demo run")  # the steps below then replace freely
    data_make(out=data, train=train_pairs, test=test_pairs, seed=0, profile="shipped", overwrite=overwrite)
    run_training(config, overwrite=True)
    best, scored = run / "best.pth", {"data": data, "labels": data / lib.data.TEST_LABELS, "device": config.device}
    predict(checkpoint=[best], data=data, out=out / "submission.csv", device=config.device)
    tsne(checkpoint=best, split="test", samples=2000, out=out / "plots", overwrite=True, **scored)
    evaluate(checkpoint=[best], out=out / "evaluation", overwrite=True, **scored)
    show(f"demo finished in {time.perf_counter() - started:.0f} s; everything is under {out}/")


def run(only: str | None = None) -> None:
    """Console-script entry point; `only`: the one command train.py or predict.py runs, whose usage
    line then reads `python train.py [OPTIONS]`. A SIGINT the parent left ignored is restored, so
    that Ctrl-C stops any command (training replaces it with its own stop-between-batches handler).
    At the end every object is frozen out of the garbage collector, whose last collection would
    otherwise walk torch's whole heap on the way out (0.3-0.9 s a command, the most after training;
    docs/benchmarks.md). Nothing of ours waits on that collection: our files are closed by then.
    Not where triton is loaded (torch's CUDA builds, with torch._dynamo): its bindings (nanobind)
    print every object still alive at exit as a leak, 30 lines after each `train` (torch 2.15)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        if only is None:
            app(prog_name="mmdigits")
        else:
            command = typer.main.get_command(app).commands[only]
            command.main(prog_name=f"python {only}.py", **SETTINGS["context_settings"])
    except KeyboardInterrupt:  # before a command started (imports)
        typer.echo("Interrupted.", err=True)
        sys.exit(130)
    finally:
        if sys.modules.get("triton") is None:
            gc.freeze()


if __name__ == "__main__":
    sys.exit(run())
