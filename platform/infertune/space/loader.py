"""Load a search-space YAML file; every problem becomes one line naming the file and key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from infertune._resources import search_spaces_dir
from infertune.exceptions import InputError
from infertune.space.schema import SearchSpace

#: Folder of the spaces shipped with infertune (``default``, ``quick``, ``tflite-cpu``).
BUILTIN_DIR = search_spaces_dir()


def resolve_space_path(name_or_path: str) -> Path:
    """A path as given, or the shipped space of that name (``quick`` → quick.yaml)."""
    path = Path(name_or_path)
    if path.exists() or path.suffix in (".yaml", ".yml"):
        return path
    builtin = BUILTIN_DIR / f"{name_or_path}.yaml"
    return builtin if builtin.exists() else path


def _describe(error: dict[str, object]) -> str:
    loc = [str(p) for p in error["loc"]]  # type: ignore[attr-defined]
    # Drop pydantic's union-branch names (e.g. "categorical", "int") from the location.
    loc = [p for p in loc if p not in ("categorical", "int", "float", "pow2")]
    where = ".".join(loc) or "(top level)"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    return f"{where}: {message}"


def _allowed(error: Any) -> str:
    """For an unknown key: the keys allowed where it stands (a typo shows at once)."""
    if error["type"] != "extra_forbidden":
        return ""
    model: Any = SearchSpace
    for part in error["loc"][:-1]:
        field = model.model_fields.get(str(part)) if hasattr(model, "model_fields") else None
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return ""
        model = annotation
    where = ".".join(str(p) for p in error["loc"][:-1]) or "top-level"
    return f"; allowed {where} keys: {', '.join(model.model_fields)}"


def load_space(name_or_path: str) -> tuple[SearchSpace, Path]:
    """Read and validate a search space.

    Raises:
        InputError: The file is missing, is not YAML, or breaks the schema; the message
            names the file, the key and what is allowed.
    """
    path = resolve_space_path(name_or_path)
    if not path.is_file():
        shipped = ", ".join(sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml")))
        raise InputError(
            f"Search space {path} does not exist; pass a YAML file or one of the "
            f"shipped spaces: {shipped}."
        )
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InputError(
            f"Search space {path} is not valid YAML: {' '.join(str(exc).split())}"
        ) from None
    if not isinstance(raw, dict):
        raise InputError(f"Search space {path} must be a mapping with 'knobs' and 'objectives'.")
    try:
        space = SearchSpace.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        problems = "; ".join(_describe(e) for e in errors[:3])  # type: ignore[arg-type]
        more = f" (and {exc.error_count() - 3} more)" if exc.error_count() > 3 else ""
        raise InputError(
            f"Search space {path} is invalid: {problems}{more}{_allowed(errors[0])}."
        ) from None
    return space, path
