"""Watching deployed models: baselines, drift and performance per batch run, alerts."""
