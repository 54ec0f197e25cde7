"""Models of every family without a ``tests/models/test_FAMILY.py`` of its own (a new family, a
third-party plugin installed here): covered the day they are declared (checks in model_checks.py)."""

from model_checks import OTHERS, pytest_generate_tests, test_a_few_steps_lower_the_loss, test_trains_and_exports_with_parity  # noqa: F401

PLUGIN = OTHERS
