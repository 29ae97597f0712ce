"""The platform's own database: SQLAlchemy models, session scope, Alembic migrations."""
