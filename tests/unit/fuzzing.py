"""The settings profile of the property-based tests named tests/unit/test_fuzz_*.py.

Bounded so that CI stays fast (all fuzz files together well under a minute on one core): each test
runs ``GITSHIP_FUZZ_EXAMPLES`` examples (default 60). A deeper local run:
``GITSHIP_FUZZ_EXAMPLES=2000 python -m pytest tests/unit -k fuzz`` (random examples; without it
the examples are the same on every run, tests/conftest.py).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

EXAMPLES = int(os.environ.get("GITSHIP_FUZZ_EXAMPLES", "60"))

settings.register_profile(
    "gitship-fuzz",
    max_examples=EXAMPLES,
    deadline=None,
    derandomize="GITSHIP_FUZZ_EXAMPLES" not in os.environ and not os.environ.get("GITSHIP_HYPOTHESIS_RANDOM"),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
FUZZ = settings.get_profile("gitship-fuzz")
