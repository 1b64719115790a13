"""Runnable benchmark scripts. Run one from the repository root as a module, so that it imports what it
shares with the tests (tests.support: models, local servers, the CLI runner) without touching sys.path:

    .venv/bin/python -m benchmarks.runtime_overhead
    make bench                     # every script, one after the other
"""
