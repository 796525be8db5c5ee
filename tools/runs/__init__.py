"""Whole runs on an emulated network: training, scenario, isolation audit, chaos, the demo and the
REST benchmark."""
