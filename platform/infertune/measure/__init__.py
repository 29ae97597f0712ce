"""Measurement: latency/throughput timing, accuracy, and the host fingerprint."""
