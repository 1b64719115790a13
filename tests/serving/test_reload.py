"""Hot reload on a real deployment layout (current -> releases/<version>): new releases swapped in,
bad ones refused while the old one keeps serving, and callers under load never see a mixed model."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from edgeml_runtime import CheckFailed, ModelLoadError, Predictor, ReloadingPredictor

from tests.serving.serving_support import make_release, switch
from tests.support.models import MLP_INT8, TWO_IO

SAMPLE = np.linspace(-2, 2, 8, dtype=np.float32)


def test_a_new_release_is_swapped_in(deployment):
    events = []
    with ReloadingPredictor(deployment, watch=False, on_event=events.append) as predictor:
        assert predictor.predict(SAMPLE).version == "v1"
        make_release(deployment, "v2", MLP_INT8)
        switch(deployment, "v2")
        assert predictor.check_now() is True
        result = predictor.predict(SAMPLE)
        assert result.version == "v2" and predictor.predictor.model.path.name == MLP_INT8.name
        np.testing.assert_array_equal(result.output, Predictor.from_bundle(deployment / "releases/v2")
                                      .predict(SAMPLE).output)
        assert predictor.check_now() is False  # nothing changed since
        assert [e["event"] for e in events] == ["reloaded"]
        assert events[0]["previous"] == "v1" and events[0]["version"] == "v2"


def test_the_watcher_thread_follows_switches_and_rollbacks(deployment):
    make_release(deployment, "v2", MLP_INT8)
    with ReloadingPredictor(deployment, poll_seconds=0.05, on_event=lambda e: None) as predictor:
        for version in ("v2", "v1", "v2"):
            switch(deployment, version)
            _wait_until(lambda v=version: predictor.version == v)
        assert predictor.stats()["reloads"] == 3 and predictor.stats()["watching"] is True
    assert predictor.stats()["watching"] is False


def test_a_broken_release_is_refused_and_the_old_one_keeps_serving(deployment):
    events = []
    with ReloadingPredictor(deployment, watch=False, on_event=events.append) as predictor:
        before = predictor.predict(SAMPLE)
        make_release(deployment, "v2", damage=True)
        switch(deployment, "v2")
        assert predictor.check_now() is False
        after = predictor.predict(SAMPLE)
        assert after.version == "v1"
        np.testing.assert_array_equal(after.output, before.output)
        assert predictor.refused == 1 and "release v2 refused" in predictor.last_error
        assert "LiteRT cannot load the model" in events[-1]["error"] and events[-1]["serving"] == "v1"
        assert predictor.check_now() is False and predictor.refused == 1  # not retried on every poll
        make_release(deployment, "v3")
        switch(deployment, "v3")
        assert predictor.check_now() is True and predictor.version == "v3" and predictor.last_error is None


@pytest.mark.parametrize("problem", ["incompatible inputs", "labels of another model", "dangling link"])
def test_other_bad_releases_are_refused(deployment, problem):
    if problem == "incompatible inputs":
        make_release(deployment, "v2", TWO_IO, labels=False)
        expected = "inputs changed"
    elif problem == "labels of another model":
        release = make_release(deployment, "v2")
        (release / "models" / "labels.json").write_text(
            (release / "models" / "labels.json").read_text().replace('"fall"', '"fall", "jump"'))
        expected = "names 5 classes"
    else:
        expected = "does not exist"
    with _reloader_started_on_v1(deployment) as predictor:
        assert predictor.check_now() is False
        assert expected in predictor.last_error and predictor.predict(SAMPLE).version == "v1"


def test_starting_without_a_deployment_says_what_is_expected(tmp_path):
    with pytest.raises(ModelLoadError, match="no 'current' link"):
        ReloadingPredictor(tmp_path)


def test_callers_under_load_see_exactly_one_model_per_call(deployment):
    """4 threads predict while the release switches back and forth 10 times: no call fails and every
    result is bit-identical to what its tagged version alone computes."""
    make_release(deployment, "v2", MLP_INT8)
    expected = {v: Predictor.from_bundle(deployment / "releases" / v).predict(SAMPLE).output for v in ("v1", "v2")}
    assert not np.array_equal(expected["v1"], expected["v2"])  # otherwise a mix-up would go unnoticed
    results, errors, done = [], [], threading.Event()

    def caller():
        mine = []
        try:
            while not done.is_set():
                mine.append(predictor.predict(SAMPLE))
        except Exception as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)
        results.extend(mine)

    with ReloadingPredictor(deployment, poll_seconds=0.01, on_event=lambda e: None) as predictor:
        threads = [threading.Thread(target=caller) for _ in range(4)]
        for thread in threads:
            thread.start()
        for version in ["v2", "v1"] * 5:
            switch(deployment, version)
            _wait_until(lambda v=version: predictor.version == v)
            time.sleep(0.02)
        done.set()
        for thread in threads:
            thread.join()
    assert errors == []
    assert {r.version for r in results} == {"v1", "v2"} and len(results) > 100
    for result in results:
        np.testing.assert_array_equal(result.output, expected[result.version])


def _reloader_started_on_v1(deployment):
    """A reloader whose serving release is v1 although current already points at the bad v2."""
    switch(deployment, "v1")
    predictor = ReloadingPredictor(deployment, watch=False, on_event=lambda e: None)
    switch(deployment, "v2")
    return predictor


def _wait_until(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


@pytest.mark.parametrize("child, expected", [
    ("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)", "crashed a test process (SIGSEGV)"),
    ("import time; time.sleep(30)", "took over 1 s; it hangs"),
    ("import sys; print('error: the backend said no', file=sys.stderr); sys.exit(2)", "the backend said no"),
])
def test_a_release_is_tried_in_a_child_process_before_the_service_loads_it(deployment, monkeypatch, child,
                                                                           expected):
    """A model that crashes the backend (native code: nothing to catch) must kill a throw-away process,
    not the service: here the child process stands for such a model; the service never loads it."""
    import sys

    from edgeml_runtime import reload

    monkeypatch.setattr(reload, "_check_command", lambda release, options: [sys.executable, "-c", child])
    monkeypatch.setattr(reload, "CHECK_TIMEOUT", 1.0)
    loaded = []
    with _reloader_started_on_v1(deployment) as predictor:
        monkeypatch.setattr(predictor, "_load", lambda release: loaded.append(release))
        make_release(deployment, "v3", MLP_INT8)
        switch(deployment, "v3")
        assert predictor.check_now() is False
        assert expected in predictor.last_error and predictor.refused == 1
        assert loaded == [] and predictor.predict(SAMPLE).version == "v1"


def test_the_child_process_check_runs_the_release_for_real(deployment):
    make_release(deployment, "v2", MLP_INT8)
    make_release(deployment, "v3", damage=True)
    from edgeml_runtime.reload import check_in_child

    check_in_child(deployment / "releases" / "v2", {"top_k": 3, "artifact": None, "backend": None, "threads": 1})
    with pytest.raises(CheckFailed, match="LiteRT cannot load the model"):
        check_in_child(deployment / "releases" / "v3", {"top_k": 3, "artifact": None, "backend": None, "threads": 1})
