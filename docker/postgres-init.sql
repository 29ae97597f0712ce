-- MLflow keeps its own database (its migrations and Optuna's both use alembic_version).
CREATE DATABASE mlflow OWNER infertune;
