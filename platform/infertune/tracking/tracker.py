"""Record studies and trials in MLflow (batch calls through ``MlflowClient``).

The client is used directly, not ``mlflow.start_run``: no global active-run state, so
runs stay linked explicitly (``mlflow.parentRunId``) and any thread or process can end them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import socket
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from infertune.config import Settings
from infertune.exceptions import InfertuneError, TrackingError, store_hint
from infertune.locks import url_lock

PARENT_TAG = "mlflow.parentRunId"
STUDY_TAG = "infertune.study"


def _plain(value: Any) -> Any:
    """A typed record (pydantic model or dataclass) as its fields; anything else as is."""
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        return dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


def _json_default(value: Any) -> Any:
    plain = _plain(value)
    return str(value) if plain is value else plain


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> dict[str, Any]:
    value = _plain(value)
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), inner, out)
    else:
        out[prefix] = value
    return out


#: Seconds to wait for an MLflow server to accept a connection before giving up.
CONNECT_TIMEOUT_S = 5.0

#: MLflow's HTTP retries, unless the user set them: its defaults (7 retries, backoff 2,
#: 120 s timeout) make an unreachable server hang a command for minutes.
_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
}


def check_server(uri: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Refuse an MLflow server that does not accept a connection within ``timeout_s``.

    Raises:
        TrackingError: One line naming the server and how to point elsewhere.
    """
    parts = urllib.parse.urlsplit(uri)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return
    except OSError as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else exc.strerror or str(exc)
        raise TrackingError(
            f"The MLflow server {uri} cannot be reached ({reason} within {timeout_s:g} s): "
            "start it, or pass --mlflow-uri (MLFLOW_TRACKING_URI) with a reachable server, or "
            "leave it unset for the store inside the home folder."
        ) from None


def _db_reason(exc: BaseException) -> str:
    """The database's own words under an MLflow error (its SQL statement left out)."""
    seen: BaseException | None = exc
    while seen is not None:
        orig = getattr(seen, "orig", None)  # SQLAlchemy's wrapper of the driver's error
        if orig is not None and str(orig).strip():
            return str(orig).strip().splitlines()[0]
        seen = seen.__cause__
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class Tracker:
    """MLflow for one tracking URI (default: SQLite and artifacts inside home).

    Code outside ``infertune.tracking`` goes through the methods below; ``client`` (the
    underlying ``MlflowClient``) is for this package, the registry adapter and tests.
    """

    def __init__(self, settings: Settings) -> None:
        from mlflow import MlflowClient

        # MLflow and its migrations log at INFO on first use of a store; keep the CLI quiet.
        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)
        # MLflow's SQL store logs a full traceback for a database error it then raises:
        # the raised error is reported (one line), so the log would only repeat it.
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
        self.settings = settings
        self.uri = settings.tracking_uri
        if self.uri.startswith(("http://", "https://")):
            for name, value in _HTTP_DEFAULTS.items():
                os.environ.setdefault(name, value)
            check_server(self.uri)
        if self.uri.startswith("sqlite:///"):
            settings.home.mkdir(parents=True, exist_ok=True)
        try:
            # MLflow creates its tables on first use of a database: one process at a time.
            with url_lock(self.uri, "mlflow-tables"):
                self.client = MlflowClient(tracking_uri=self.uri)
        except InfertuneError:
            raise
        except Exception as exc:
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TrackingError(f"Cannot open the MLflow store {self.uri}: {text}") from None

    @contextlib.contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        """Report an MLflow store that cannot be written as one line (a read-only home).

        Only for the study's set-up, before any trial: a trial's own calls fail the way
        MLflow raises, so the study stops rather than failing trial after trial.
        """
        try:
            yield
        except InfertuneError:
            raise
        except Exception as exc:
            reason = _db_reason(exc)
            hint = store_hint(reason)
            raise TrackingError(
                f"Cannot {what} in the MLflow store {self.uri}: {reason}"
                + (f"; {hint}." if hint else ".")
            ) from None

    def experiment(self, name: str) -> str:
        """The experiment id for ``name``, created (artifacts inside home) if missing."""
        with self._writing(f"open the experiment '{name}'"):
            return self._experiment(name)

    def _experiment(self, name: str) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return str(found.experiment_id)
        location = None
        if not self.uri.startswith(("http://", "https://", "databricks")):
            location = (self.settings.artifacts_dir / name.replace("/", "_")).resolve().as_uri()
        try:
            return str(self.client.create_experiment(name, artifact_location=location))
        except Exception:
            # Another worker created it first.
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise
            return str(found.experiment_id)

    def start_parent(
        self,
        experiment_id: str,
        study: str,
        run_id: str | None,
        params: dict[str, Any],
        tags: dict[str, str],
    ) -> str:
        """Open the study's parent run (reopened on resume).

        Raises:
            TrackingError: The store cannot be written (one line: a read-only home, a full
                disk).
        """
        with self._writing(f"open the parent run of study '{study}'"):
            if run_id is not None:
                self.client.update_run(run_id, status="RUNNING")
                return run_id
            run = self.client.create_run(
                experiment_id, run_name=study, tags={STUDY_TAG: study, **tags}
            )
            self.log(run.info.run_id, params=params)
            return str(run.info.run_id)

    def start_trial(
        self,
        experiment_id: str,
        parent_run_id: str,
        study: str,
        number: int,
        params: dict[str, Any],
        tags: dict[str, str],
    ) -> str:
        """Open a child run for one trial."""
        run = self.client.create_run(
            experiment_id,
            run_name=f"trial-{number}",
            tags={
                PARENT_TAG: parent_run_id,
                STUDY_TAG: study,
                "infertune.trial": str(number),
                **tags,
            },
        )
        self.log(run.info.run_id, params=params)
        return str(run.info.run_id)

    def log(
        self,
        run_id: str,
        metrics: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        """Log in one batch call; ``None`` metrics are skipped, nested dicts flattened."""
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        flat_metrics = _flatten("", metrics or {}, {})
        batch_metrics = [
            Metric(k, float(v), now, 0)
            for k, v in flat_metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        ]
        batch_params = [Param(k, str(v)) for k, v in _flatten("", params or {}, {}).items()]
        batch_tags = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
        if batch_metrics or batch_params or batch_tags:
            self.client.log_batch(
                run_id, metrics=batch_metrics, params=batch_params, tags=batch_tags
            )

    def log_json(self, run_id: str, name: str, value: Any) -> None:
        """Store a JSON document as an artifact of the run (typed records as their fields)."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            path.write_text(json.dumps(value, indent=2, default=_json_default))
            self.client.log_artifact(run_id, str(path))

    def log_file(self, run_id: str, path: Path, artifact_path: str) -> None:
        """Store a file (or a folder's files) as artifacts of the run."""
        if path.is_dir():
            self.client.log_artifacts(run_id, str(path), artifact_path)
        else:
            self.client.log_artifact(run_id, str(path), artifact_path)

    def end(self, run_id: str, status: str) -> None:
        """End a run: FINISHED, FAILED or KILLED."""
        self.client.set_terminated(run_id, status=status)

    def run_status(self, run_id: str) -> str | None:
        """The run's status (``RUNNING``, ``FINISHED``, ``FAILED``, ``KILLED``...).

        ``None`` when the run cannot be read (deleted, or the store is unreachable).
        """
        try:
            return str(self.client.get_run(run_id).info.status)
        except Exception:
            return None

    def load_json(self, run_id: str, name: str) -> Any | None:
        """A JSON artifact stored by :meth:`log_json`; ``None`` if the run has none."""
        try:
            with tempfile.TemporaryDirectory() as tmp:
                path = self.client.download_artifacts(run_id, name, tmp)
                return json.loads(Path(path).read_text())
        except Exception:
            return None

    def children(self, experiment_id: str, parent_run_id: str) -> list[Any]:
        """Every child run of a parent run."""
        return list(
            self.client.search_runs(
                [experiment_id], f"tags.`{PARENT_TAG}` = '{parent_run_id}'", max_results=50000
            )
        )
