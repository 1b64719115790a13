"""Is the artifact `edgeml convert` recommends really the fastest, and what does choosing it cost?

The recommendation (edgeml_runtime.recommend) times every passing artifact at each thread count within a budget
of about a second. Here the same candidates are
1. recommended REPEATS times, with the budget `edgeml convert` uses: how often the same (file, threads) comes out,
   and how long one recommendation takes (loading included);
2. measured for much longer in interleaved rounds (benchmarks.common): per round, each configuration's per-call
   time; the reference's fastest configuration is the one with the lowest median, and the figure is the median over
   rounds of chosen / that one (paired within each round). A choice within `recommend.TIE_TOLERANCE` of 1 is right
   (within that tolerance the smaller file wins on purpose).
Candidates: the committed MLP as .tflite fp32, .tflite int8 and .onnx fp32 (tests/runtime/data), and MobileNetV2
(.tflite and .onnx fp32, random weights) for a model whose per-call time is not dominated by fixed costs.
Run: python -m benchmarks.recommend_choice
"""

from __future__ import annotations

import collections
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from edgeml_runtime import load, recommend, synthetic_inputs
from edgeml_runtime.formats import FORMATS

from benchmarks.common import interleaved, median_ratio, print_header, time_calls
from tests.support.models import DATA, backend_installed, mobilenet

REPEATS = 5
REFERENCE_ROUNDS = 25
CONVERT_BUDGET_S = 1.0  # what edgeml_converters.pipeline.RECOMMEND_BUDGET_S gives the timed rounds


def candidate_set(folder: Path, files):
    """Candidates for `files` (path, quantization) copied into `folder`, as a conversion's output would hold them."""
    found = []
    for path, quantization in files:
        if not backend_installed(path):
            continue
        shutil.copyfile(path, folder / path.name)
        fmt = "tflite" if path.suffix == ".tflite" else "onnx"
        assert fmt in FORMATS
        found.append(recommend.Candidate(folder / path.name, fmt, quantization, path.stat().st_size, path.name))
    return found


def repeat_choices(candidates):
    choices, seconds = collections.Counter(), []
    for _ in range(REPEATS):
        started = time.perf_counter()
        chosen = recommend.choose(recommend.measure(candidates, budget_s=CONVERT_BUDGET_S))
        seconds.append(time.perf_counter() - started)
        choices[(chosen["path"], chosen["threads"])] += 1
    return choices, seconds


def reference_ratio(candidates, chosen):
    """Median over long interleaved rounds of chosen / the configuration fastest over all rounds."""
    steps = {}
    for candidate in candidates:
        for threads in recommend.default_threads():
            model = load(candidate.path, threads=threads)
            feeds = synthetic_inputs(model.inputs, seed=0)
            for _ in range(20):
                model.run(feeds)
            per_call = time_calls(model.run, feeds, 5) / 1e6
            repeats = max(1, min(1000, int(0.01 / per_call)))
            steps[(candidate.name, threads)] = lambda run=model.run, f=feeds, n=repeats: time_calls(run, f, n)
    rounds = interleaved(steps, rounds=REFERENCE_ROUNDS)
    medians = {key: statistics.median(values) for key, values in rounds.items()}
    best = min(medians, key=medians.get)
    return median_ratio(rounds[best], rounds[chosen]), best, medians


def report(title, files):
    with tempfile.TemporaryDirectory(prefix="edgeml-recommend-") as folder:
        candidates = candidate_set(Path(folder), files)
        if not candidates:
            print(f"{title}: no backend installed for its files; skipped\n")
            return
        choices, seconds = repeat_choices(candidates)
        (chosen, times), *others = choices.most_common()
        ratio, best, medians = reference_ratio(candidates, chosen)
    print(f"{title}: {len(candidates)} files x threads {recommend.default_threads()}")
    print(f"  recommended {chosen[0]} with {chosen[1]} thread(s) in {times} of {REPEATS} runs"
          + (f" (also: {', '.join(f'{p} x{t} {n}x' for (p, t), n in others)})" if others else ""))
    print(f"  one recommendation takes {statistics.median(seconds):.2f} s (median; loading included)")
    print(f"  long reference ({REFERENCE_ROUNDS} interleaved rounds): fastest {best[0]} x{best[1]}; chosen / fastest, "
          f"median of per-round ratios {ratio:.3f} (ties: up to {1 + recommend.TIE_TOLERANCE:.2f})")
    for (path, threads), value in sorted(medians.items(), key=lambda item: item[1]):
        print(f"    {path:<24} x{threads}  {value:9.1f} µs per call")
    print()


def main():
    print_header("The recommended artifact: stable, and the fastest within the tie tolerance")
    report("MLP (8 -> 16 -> 4)", [(DATA / "mlp_fp32.tflite", "fp32"), (DATA / "mlp_int8.tflite", "int8"),
                                  (DATA / "mlp_fp32.onnx", "fp32")])
    models = mobilenet()
    report("MobileNetV2 224x224", [(models["tflite"], "fp32"), (models["onnx"], "fp32")])


if __name__ == "__main__":
    main()
