"""Hypothesis profiles for the whole suite.

- ``ci``: derandomized (the same examples every run), a moderate number of examples, no deadline,
  failing examples printed as reproduction blobs. Loaded when the ``CI`` environment variable is set.
- ``dev``: many more examples, for exploring locally: ``HYPOTHESIS_PROFILE=dev pytest tests/passes``.
- ``default``: hypothesis' defaults with no deadline (graphs are interpreted, timings vary).

``HYPOTHESIS_PROFILE`` always wins. The profile is a test-suite setting read here only; the code
under test never looks at the environment.
"""
import os

from hypothesis import HealthCheck, settings

_SLOW_DRAWS = [HealthCheck.too_slow, HealthCheck.data_too_large]

settings.register_profile("ci", derandomize=True, max_examples=200, deadline=None, print_blob=True,
                          suppress_health_check=_SLOW_DRAWS)
settings.register_profile("dev", max_examples=1000, deadline=None, print_blob=True,
                          suppress_health_check=_SLOW_DRAWS)
settings.register_profile("default", deadline=None, suppress_health_check=_SLOW_DRAWS)

_profile = os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "default")
settings.load_profile(_profile)
