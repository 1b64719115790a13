"""An emulated device (Raspberry Pi 4/5): a Debian arm64 userland run by qemu's user-mode emulator.

    device = build("rpi4", progress=print)     # ProgressEvents; cached under ~/.cache/edgeml/emulated
    device.run(["python3", "-m", "edgeml_runtime", "bench", "model.tflite"])

Emulated latency is not the device's latency: commands run with EDGEML_EMULATED set, and the
runtime's machine facts report it as `emulated`.
"""

from edgeml.emulation.build import build, status
from edgeml.emulation.errors import EmulationError
from edgeml.emulation.runner import EmulatedDevice
from edgeml.emulation.targets import EmulatedTarget, Layout, emulated_targets, get_target

__all__ = ["EmulatedDevice", "EmulatedTarget", "EmulationError", "Layout", "build", "emulated_targets",
           "get_target", "status"]
