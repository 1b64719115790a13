"""Fixtures shared by the device red-team modules (bundles, deploy): the bundles they tamper with, the login
to the throw-away sshd, and the one-line tally printed at the end of the session."""

from __future__ import annotations

import pytest

from tests.security import device_support as support


@pytest.fixture(scope="session", autouse=True)
def red_team_summary(request):
    yield
    support.print_summary(request)  # prints nothing when no device case ran


@pytest.fixture(scope="module")
def made(sshd, tmp_path_factory):
    support.skip_unless_x86_64(pytest)
    return support.bundles(tmp_path_factory, support.device_python(sshd))


@pytest.fixture(scope="module")
def login(sshd):
    return sshd.login()
