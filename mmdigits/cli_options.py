"""The CLI's options: those several commands share, and those derived from TrainConfig's fields,
so that each training option is written once. `train`, `cv`, `compare`, `matrix`, `demo` and
`tune` take their training options from here; the precedence is timm's: an option given on the
command line > a --config file > the defaults.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Annotated, Any, Optional, get_args, get_type_hints

import typer
import typer.core

from mmdigits import __version__
from mmdigits.config import DEFAULT_MODEL, GROUPS, TrainConfig, flag

FIELD_TYPES = get_type_hints(TrainConfig)
DEFAULT_CHECKPOINT = Path(f"runs/{DEFAULT_MODEL}/best.pth")


def print_version(value: bool) -> None:
    if value:
        typer.echo(f"mmdigits {__version__}")
        raise typer.Exit()


def flag_option(declaration: str, help: str, **settings: Any) -> Any:
    """typer.Option for an on/off flag, shown in `-h` without the `<bool>` typer 0.29 prints beside
    it, which reads as a value to give (`--overwrite <bool>`)."""
    return typer.Option(declaration, help=help, metavar="", **settings)


class NoBoolHelp:
    """-h/--help shown like our flags, without the `<bool>` typer 0.29 prints beside it."""

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option


class Command(NoBoolHelp, typer.core.TyperCommand):
    pass


class Group(NoBoolHelp, typer.core.TyperGroup):
    pass


# Options shared by several commands, used as `data: opt.Data = Path(".")`
Version = Annotated[
    bool, flag_option("--version", callback=print_version, is_eager=True, help="Print the version and exit.")
]
Data = Annotated[Path, typer.Option("--data", help="Folder with the competition's .npy/.csv files.")]
Device = Annotated[str, typer.Option(help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps.")]
Checkpoints = Annotated[
    list[Path],
    typer.Option(
        "--checkpoint",
        "-c",
        metavar="<path>",  # not typer 0.29's <list[Path]>: one path, repeated
        help="A .pth file, or a folder of runs (every best.pth under it). "
        "Repeat to average an ensemble's probabilities.",
    ),
]
Checkpoint = Annotated[Path, typer.Option("--checkpoint", "-c", help="A trained .pth file.")]
Overwrite = Annotated[
    bool, flag_option("--overwrite", help="Replace what the output folder already holds (refused without it).")
]
ConfigFile = Annotated[
    Optional[Path],
    typer.Option("--config", help="JSON of training options (as tune's best.json); options given here win."),
]
Tta = Annotated[bool, flag_option("--tta", help="Average over digit-safe test-time augmentations.")]
Labels = Annotated[Optional[Path], typer.Option(help="row_id,label[,condition] CSV for the test files.")]


def config_parameter(name: str, default: Any, metadata: Mapping[str, Any]) -> inspect.Parameter:
    """One keyword parameter carrying a typer option: --name (bools also --no-name; a bool that may be
    None is left to the run when neither is given), shown in `-h` under its group."""
    kind, help, group = FIELD_TYPES[name], metadata["help"], metadata["group"]
    if bool in (kind, *get_args(kind)):
        option = flag_option(f"{flag(name)}/--no-{name.replace('_', '-')}", help=help, rich_help_panel=group)
    else:
        option = typer.Option(flag(name), help=help, rich_help_panel=group, metavar=metadata["metavar"])
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[kind, option])


def with_config_options(exclude: tuple[str, ...] = (), defaults: dict[str, Any] | None = None) -> Callable:
    """Give a command --config and one option per TrainConfig field except `exclude`, typed,
    defaulted (unless `defaults` says otherwise for this command) and helped by the field. The
    command receives `config`, the TrainConfig they make, and, if it asks for it, `given`: the
    options set on the command line or in the --config file."""
    defaults = defaults or {}

    def decorate(command: Callable) -> Callable:
        own = inspect.signature(command, eval_str=True).parameters
        wants_given = "given" in own
        kept = [parameter for name, parameter in own.items() if name not in ("config", "given")]
        taken = [field.name for field in fields(TrainConfig) if field.name not in exclude]
        added = [
            inspect.Parameter("context", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context),
            inspect.Parameter("config_file", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=ConfigFile),
        ] + [
            config_parameter(field.name, defaults.get(field.name, field.default), field.metadata)
            for field in sorted(fields(TrainConfig), key=lambda field: GROUPS.index(field.metadata["group"]))
            if field.name in taken
        ]

        @functools.wraps(command)
        def wrapper(*args: Any, context: typer.Context, config_file: Path | None = None, **kwargs: Any) -> Any:
            options = {name: kwargs.pop(name) for name in taken}
            config, given = config_from_options(context, options, config_file)
            if "data" in given and "data" in taken:  # a --config's --data is known only here; before
                # validate(), whose model registry imports torch (a typed one, checked already, passes again)
                refuse_missing_data(config.data)
            config.validate()
            if wants_given:
                kwargs["given"] = given
            return command(*args, config=config, **kwargs)

        wrapper.__signature__ = inspect.Signature(kept + added)  # what typer reads
        return wrapper

    return decorate


def refuse_missing_data(data_dir: str | Path) -> None:
    """A --data folder given (typed, or in a --config file) but missing, or holding none of the
    competition's files, is refused before the command imports torch: in 0.5 s, not 3-5 s. A --data
    left at its default is checked later, where a --resume may read its folder from the run, or a
    missing checkpoint be the first thing to say."""
    from mmdigits.data import require_folder  # numpy only; --help stays without it

    require_folder(Path(data_dir))


def explicit_options(context: typer.Context, options: dict[str, Any]) -> set[str]:
    """The options typed on the command line (not left at their defaults)."""
    sources = {name: context.get_parameter_source(name) for name in options}
    return {name for name, source in sources.items() if source is not None and source.name != "DEFAULT"}


def config_from_options(
    context: typer.Context, options: dict[str, Any], config_file: Path | None
) -> tuple[TrainConfig, set[str]]:
    """The config, not yet validated, and the options set on the command line or in the --config
    file. Options typed on the command line override the file, which overrides the defaults."""
    values = TrainConfig.read_file(config_file) if config_file is not None else {}
    typed = explicit_options(context, options)
    given = typed | set(values)
    values |= {name: value for name, value in options.items() if name in typed or name not in values}
    return TrainConfig(**values), given
