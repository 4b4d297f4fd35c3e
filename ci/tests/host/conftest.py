"""Host-side fixtures."""

import pytest

from ci.harness.hostrun import host_run as _host_run


@pytest.fixture(scope="session")
def host_run():
    return _host_run
