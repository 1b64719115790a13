"""What the tests and the benchmarks share, each fact in one place:

- `cli`: run the command lines as a user does (`python -m edgeml ...`, `python -m edgeml_runtime ...`), or
  `edgeml` in this process through click's CliRunner.
- `local_servers`: throw-away OpenSSH server, Mosquitto broker and `edgeml_runtime serve` on 127.0.0.1.
- `models`: the committed tiny models, which backends are installed, and the benchmark models.
- `int8_models`: small full-integer .tflite models built with TensorFlow (the microcontroller tests).
- `marks`: pytest parametrisation and skips built on those (the only module here that imports pytest).
- `browser`: open an HTML report in a real headless Chromium (rendered DOM, screenshot) and list what in a
  page could fetch from the network.

Everything but `marks` needs only the standard library at import time (numpy and heavier packages are
imported by the functions that use them), so `tests/runtime` and `tests/serving` can use it in the
runtime-only environments (numpy + one backend, see `make test-runtime-only`).
"""
