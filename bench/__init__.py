"""Accuracy and scale benchmarks: our pipeline against Splink on FEBRL and generated data.

Not part of the test suite and not installed with the package; run from the repository root
with ``python -m bench.run_all``.
"""
