"""The platform's Alembic migrations, installed as ``infertune.migrations``."""
