"""Shared fixtures: a real OpenSSH server on 127.0.0.1 (`sshd`).

    def test_something(sshd):
        login = sshd.login()                                 # a fresh user key for this test
        login.run("uname -m")                                # ssh with that key (CompletedProcess)
        edgeml deploy b.tar.gz --host {login.target} -F {login.config}

`sshd` is session-scoped: one server, started on a free port with a throw-away host key, running as the
user who runs the tests (root in CI) and accepting only keys added by `sshd.login()`. The tests never
read or write the machine's ~/.ssh: every login comes with its own `ssh -F` config file that names its
key (IdentitiesOnly), a known_hosts file holding the server's host key (StrictHostKeyChecking yes) and
BatchMode. The login's user is the real user, so give commands an explicit working directory under
tmp_path (e.g. `edgeml deploy --dir`), never `~`.

Per-login session set-up (written into that key's authorized_keys line, so tests do not affect
each other):
- `path_prefix=[dir, ...]`: put these directories first on the session's PATH, e.g. a dir holding a
  `python3` wrapper that runs an emulated aarch64 Python; what the session runs by name (python3, tar)
  is looked up there first, even if the user's ~/.bashrc changes PATH (pyenv does).
- `environment={"NAME": "value"}`: extra environment variables for the session.
- `force_command="..."`: run this (with /bin/sh) instead of what the client asked for; the client's
  command is in $SSH_ORIGINAL_COMMAND.
Such a login gets a forced command (authorized_keys `command=`): a small script that sets this up and
then runs the client's command with /bin/sh. scp and sftp keep working (sftp goes to the external
sftp-server through it).

The server itself is tests/support/local_servers.py (the benchmarks use it too). When sshd or ssh-keygen
is missing the tests that use the fixture are skipped, except under CI (the environment variable CI set),
where they fail: CI must really run them (.ci/run installs openssh-server).
"""

from __future__ import annotations

import os

import pytest

from tests.support.local_servers import ServerFailed, SshServer, ToolMissing
from tests.support.marks import unavailable

try:  # the property tests (hypothesis, a dev dependency): no example database in the work tree, no deadline
    # on shared cores; under CI the same examples every run, so a red CI is reproducible.
    from hypothesis import settings as _hypothesis_settings
except ImportError:
    pass
else:
    _hypothesis_settings.register_profile("edgeml", database=None, deadline=None,
                                          derandomize=bool(os.environ.get("CI")))
    _hypothesis_settings.load_profile("edgeml")


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    """A running OpenSSH server on 127.0.0.1 (see this module's docstring)."""
    server = SshServer(tmp_path_factory.mktemp("sshd"))
    try:
        server.start()
    except ToolMissing as missing:
        unavailable(str(missing))
    except ServerFailed as failure:
        pytest.fail(str(failure))
    yield server
    server.stop()
