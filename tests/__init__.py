"""The test suite. A package, so that the tests and the benchmarks share `tests.support` (pytest puts the
repository root on sys.path, see `pythonpath` in pyproject.toml; benchmarks run as `python -m benchmarks.NAME`
from the repository root)."""
