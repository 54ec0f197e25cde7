"""The cnn family's catalogue models: train, export with parity, learn (checks in model_checks.py)."""

from model_checks import pytest_generate_tests, test_a_few_steps_lower_the_loss, test_trains_and_exports_with_parity  # noqa: F401

PLUGIN = "cnn"
