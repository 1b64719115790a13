"""Serving predictions to apps that are not Python: `service` (JSON in, prediction out), `http`
(standard library server), `mqtt` (paho-mqtt bridge, optional extra), `systemd` (unit generator), `cli`.

Nothing is imported here, so `python -m edgeml_runtime` stays quick to start.
"""
