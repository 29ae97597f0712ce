#!/usr/bin/env bash
# The compose set-up without docker, for several processes on one machine: an MLflow
# tracking server on loopback with its own PostgreSQL database, next to the platform
# database. Then, in every shell that runs infertune:
#   export INFERTUNE_DB_URL=postgresql://postgres@127.0.0.1:5432/infertune
#   export MLFLOW_TRACKING_URI=http://127.0.0.1:5000
set -euo pipefail
PGURL=${PGURL:-postgresql://postgres@127.0.0.1:5432}
PORT=${MLFLOW_PORT:-5000}
ARTIFACTS=${MLFLOW_ARTIFACTS:-$PWD/.infertune/mlflow-server-artifacts}
for db in infertune infertune_mlflow; do
    psql "$PGURL/postgres" -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 \
        || psql "$PGURL/postgres" -c "CREATE DATABASE $db"
done
mkdir -p "$ARTIFACTS"
INFERTUNE_DB_URL="$PGURL/infertune" .venv/bin/infertune db upgrade
echo "MLflow on http://127.0.0.1:$PORT (Ctrl-C stops it)"
exec .venv/bin/mlflow server --host 127.0.0.1 --port "$PORT" \
    --backend-store-uri "postgresql+psycopg://${PGURL#postgresql://}/infertune_mlflow" \
    --artifacts-destination "$ARTIFACTS" --serve-artifacts
