"""Promotion: a trial's configuration as an MLflow registry version, aliases, rollback.

Above tuning (it reads studies and rebuilds variants); nothing below imports it.
"""

from infertune.promotion.registry import PromotionResult, Registry, promotion_problems

__all__ = ["PromotionResult", "Registry", "promotion_problems"]
