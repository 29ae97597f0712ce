"""The Streamlit dashboard, installed as ``infertune.dashboards``; Streamlit runs ``app.py``."""
