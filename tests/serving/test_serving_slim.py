"""Serving stays within the runtime's budget: numpy, one backend, the standard library (and paho only
when MQTT is used). No TensorFlow, Keras or ONNX, even with every serving module imported and used."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.support.models import MLP_FP32

FORBIDDEN = ("tensorflow", "keras", "tf_keras", "onnx", "tf2onnx")


def test_predicting_and_serving_over_http_import_nothing_heavy(deployment):
    code = f"""
        import sys, json, threading, urllib.request
        from edgeml_runtime import Predictor, ReloadingPredictor
        from edgeml_runtime.serve import cli, http, service, systemd
        Predictor.from_model({str(MLP_FP32)!r}).predict([0.0] * 8)
        live = ReloadingPredictor({str(deployment)!r}, watch=False)
        server = http.make_server(service.PredictionService(live), "127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        request = urllib.request.Request(server.url + "/predict", data=b"[0,0,0,0,0,0,0,0]")
        assert json.load(urllib.request.urlopen(request))["version"] == "v1"
        server.shutdown()
        print(sorted(n for n in sys.modules if n.split(".")[0] in {FORBIDDEN!r} + ("paho",)))
    """
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
