import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture
def int_backend():
    """Run with the float-free integer matmul backend."""
    from tintin.numerics import set_matmul_backend

    prev = set_matmul_backend("int")
    yield
    set_matmul_backend(prev)
