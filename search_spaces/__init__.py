"""The search spaces shipped with infertune, installed as ``infertune.search_spaces``."""
