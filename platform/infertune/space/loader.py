"""Load a search-space YAML file; every problem becomes one line naming the file and key.

A path may name any file (``--space``, the dashboard's Launch form), so an error names the
file, the line and the key, and never quotes what the file holds: a credentials file or
``/etc/shadow`` passed by mistake must not end up in a terminal, a log or a web page.
"""

from __future__ import annotations

import re
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


#: The largest space file read (a search space is a few hundred bytes).
MAX_BYTES = 1 << 20
#: A key that may be named in an error: short and made of name characters.
_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")
#: A quoted piece of a YAML problem: the file's own text unless it is one of the parser's
#: token names (``'<scalar>'``) or a single character (``':'``, ``'\\t'``).
_QUOTED = re.compile(r"'([^']*)'")


def _quoted(match: re.Match[str]) -> str:
    inner = match.group(1)
    keep = len(inner) <= 2 or re.fullmatch(r"<[a-z ]+>", inner) is not None
    return match.group(0) if keep else "(text not shown)"


def _key(part: object) -> str:
    """A key from the file, if it looks like a key name; else a placeholder."""
    text = str(part)
    return text if _KEY.match(text) else "(a key not shown)"


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """What the parser found and where, without the file's text."""
    problem = str(getattr(exc, "problem", None) or "malformed YAML")
    problem = _QUOTED.sub(_quoted, problem)
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}"


def _describe(error: dict[str, object]) -> str:
    loc = [_key(p) for p in error["loc"]]  # type: ignore[attr-defined]
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
    where = ".".join(_key(p) for p in error["loc"][:-1]) or "top-level"
    return f"; allowed {where} keys: {', '.join(model.model_fields)}"


def load_space(name_or_path: str) -> tuple[SearchSpace, Path]:
    """Read and validate a search space.

    Raises:
        InputError: The file is missing, unreadable, not YAML, or breaks the schema; the
            message names the file, the line or key and what is allowed, never the
            file's content.
    """
    path = resolve_space_path(name_or_path)
    if not path.is_file():
        shipped = ", ".join(sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml")))
        raise InputError(
            f"Search space {path} does not exist; pass a YAML file or one of the "
            f"shipped spaces: {shipped}."
        )
    try:
        if path.stat().st_size > MAX_BYTES:
            raise InputError(
                f"Search space {path} is larger than {MAX_BYTES >> 20} MiB; a search space is "
                "a short YAML file."
            )
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"Search space {path} is not a UTF-8 text (YAML) file.") from None
    except OSError as exc:
        raise InputError(
            f"Search space {path} cannot be read: {exc.strerror or type(exc).__name__}."
        ) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"Search space {path} is not valid YAML: {_yaml_problem(exc)}.") from None
    if not isinstance(raw, dict):
        raise InputError(f"Search space {path} must be a mapping with 'knobs' and 'objectives'.")
    if not set(map(str, raw)) & set(SearchSpace.model_fields):
        raise InputError(
            f"Search space {path} is not a search space: none of its top-level keys is one of "
            f"{', '.join(SearchSpace.model_fields)}."
        )
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
