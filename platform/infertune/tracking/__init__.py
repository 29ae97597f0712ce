"""MLflow tracking: a parent run per study, a child run per trial."""
