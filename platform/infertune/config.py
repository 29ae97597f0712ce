"""Settings: where infertune keeps its files and which stores it talks to.

Resolution order for each setting: a CLI flag, then the environment variable, then the
default. Defaults keep everything inside one folder (``./.infertune``) so that a fresh
checkout needs no set-up.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Resolved settings for one invocation."""

    model_config = SettingsConfigDict(env_prefix="INFERTUNE_", extra="ignore")

    home: Path = Field(
        default=Path(".infertune"),
        description="Folder for demo models, built variants, caches and the embedded stores.",
    )
    db_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the platform database (default: SQLite inside home).",
    )
    mlflow_tracking_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI"),
        description="MLflow tracking URI (default: a SQLite database inside home).",
    )

    dashboard_auth: Literal["auto", "password", "oidc", "none"] = Field(
        default="auto",
        description=(
            "Dashboard login: oidc (Streamlit's st.login, an [auth] section in "
            ".streamlit/secrets.toml), password (accounts below), none (loopback only), or "
            "auto: oidc if configured, else password if an account exists, else none."
        ),
    )
    dashboard_user: str = Field(
        default="admin", description="Account name that goes with dashboard_password."
    )
    dashboard_password: SecretStr | None = Field(
        default=None,
        description="A dashboard password (or token) from the environment, for dashboard_user.",
    )
    dashboard_users_file: Path | None = Field(
        default=None,
        description="File of hashed dashboard accounts (default: HOME/dashboard-users).",
    )
    dashboard_roots: str | None = Field(
        default=None,
        description=(
            "Folders (separated by the OS path separator) from which the dashboard's Launch "
            "form accepts models, data and search spaces (default: HOME/models)."
        ),
    )
    dashboard_allowed_hosts: str | None = Field(
        default=None,
        description=(
            "Comma-separated host names the dashboard answers to besides loopback (its name "
            "behind a proxy); other Host headers are refused (DNS rebinding)."
        ),
    )

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def database_url(self) -> str:
        """The platform database URL, defaulting to SQLite inside home."""
        return self.db_url or f"sqlite:///{self.home / 'infertune.db'}"

    @property
    def tracking_uri(self) -> str:
        """The MLflow tracking URI, defaulting to its own SQLite database inside home."""
        return self.mlflow_tracking_uri or f"sqlite:///{self.home / 'mlflow.db'}"

    def child_env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """An environment that gives a child process these settings.

        For scheduler jobs, the dashboard and launched studies. Through the environment
        rather than argv: database URLs may hold passwords, and any user can read argv.
        """
        env = dict(os.environ if base is None else base)
        env["INFERTUNE_HOME"] = str(self.home)
        if self.db_url:
            env["INFERTUNE_DB_URL"] = self.db_url
        if self.mlflow_tracking_uri:
            env["MLFLOW_TRACKING_URI"] = self.mlflow_tracking_uri
        return env

    @property
    def users_file(self) -> Path:
        """The dashboard's file of hashed accounts."""
        return (self.dashboard_users_file or self.home / "dashboard-users").expanduser()

    @property
    def launch_roots(self) -> list[Path]:
        """Folders the dashboard may start studies from (resolved, symlinks followed)."""
        if self.dashboard_roots:
            parts = [p for p in self.dashboard_roots.split(os.pathsep) if p.strip()]
        else:
            parts = [str(self.home / "models")]
        return [Path(p.strip()).expanduser().resolve() for p in parts]

    @property
    def artifacts_dir(self) -> Path:
        """Where the embedded MLflow store keeps artifacts."""
        return self.home / "mlartifacts"

    @property
    def variants_dir(self) -> Path:
        """Content-addressed cache of built variants."""
        return self.home / "variants"

    @property
    def cache_dir(self) -> Path:
        """Small derived facts: model inspections and reference predictions."""
        return self.home / "cache"

    @property
    def demo_dir(self) -> Path:
        """Trained demo models and their data splits."""
        return self.home / "demo"


def load_settings(
    home: Path | None = None,
    db_url: str | None = None,
    mlflow_tracking_uri: str | None = None,
) -> Settings:
    """Build settings from explicit values (CLI flags) over the environment and defaults."""
    settings = Settings()
    if home is not None:
        settings.home = Settings._absolute_home(home)
    if db_url is not None:
        settings.db_url = db_url
    if mlflow_tracking_uri is not None:
        settings.mlflow_tracking_uri = mlflow_tracking_uri
    return settings
