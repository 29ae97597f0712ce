"""Tuning studies: Optuna searches the knobs, the engine measures, MLflow records."""
