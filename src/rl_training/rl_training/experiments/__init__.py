"""Training experiments: code that only an experiment's run config uses, not the shipped runs.

Each module names the run config under config/training/experiments/ that uses it.
"""
