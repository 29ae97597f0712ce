"""Registry commands: ``promote`` a trial, ``rollback`` an alias, show the ``registry``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from infertune.cli._common import (
    AliasOption,
    JsonOption,
    StorageOption,
    StudyArgument,
    current_settings,
    platform_db,
    settings_storage,
)

if TYPE_CHECKING:
    from infertune.promotion.registry import PromotionResult

__all__ = ["promote", "registry", "rollback"]

ModelNameOption = Annotated[
    str, typer.Option("--name", help="Registered model name in the MLflow Model Registry.")
]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why: kept in the promotion history.")]
RegisteredModelArgument = Annotated[
    str, typer.Argument(help="Registered model name.", show_default=False)
]


def _print_promotion(result: PromotionResult, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2))
    else:
        typer.echo(result.message)


def promote(
    study: StudyArgument,
    trial: Annotated[
        int, typer.Option("--trial", help="Trial number to promote.", show_default=False)
    ],
    name: ModelNameOption,
    alias: AliasOption = "production",
    reason: ReasonOption = "",
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Promote a trial that failed, was pruned, breaks a constraint or is off the "
            "front.",
        ),
    ] = False,
    storage: StorageOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register a trial's configuration in the MLflow Model Registry and move an alias to it.

    The version is an MLflow pyfunc model carrying the variant file and its runtime settings
    (runtime, precision, threads, batch size), tagged with the study, trial, knobs, figures
    and hardware. Load it with `mlflow.pyfunc.load_model("models:/NAME@production")`.
    Promoting the same trial again is a no-op.
    """
    from infertune.promotion.registry import Registry
    from infertune.tuning import queries

    registry = Registry(current_settings(), platform_db())
    opened = queries.load(study, settings_storage(storage))
    _print_promotion(registry.promote(opened, trial, name, alias, reason, force), as_json)


def rollback(
    name: RegisteredModelArgument,
    alias: AliasOption = "production",
    reason: ReasonOption = "",
    as_json: JsonOption = False,
) -> None:
    """Move the alias back to the version that was promoted before the current one."""
    from infertune.promotion.registry import Registry

    registry = Registry(current_settings(), platform_db())
    _print_promotion(registry.rollback(name, alias, reason), as_json)


def registry(name: RegisteredModelArgument, as_json: JsonOption = False) -> None:
    """Show a registered model's versions, where its aliases point, and the promotion history."""
    from infertune.cli._display import registry_tables, stdout
    from infertune.promotion.registry import Registry

    shown = Registry(current_settings(), platform_db()).view(name)
    if as_json:
        typer.echo(json.dumps(shown, indent=2, default=str))
        return
    for table in registry_tables(shown):
        stdout.print(table)
