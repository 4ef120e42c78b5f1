"""Operator input devices. Each produces OperatorInput messages; the loop publishes them over ZMQ
and reads them back, so every device reaches the robot through the same path as a VR headset.

Devices are opened by name (`open_device("keyboard", teleop_config)`); each module below registers
its device with `register_device` (see registry.py), and importing this package registers them all."""
from collector.teleop.devices.base import DeviceContext, InputDevice
from collector.teleop.devices.registry import (DEVICES, device_names, open_device, register_device,
                                               register_remote_device)
from collector.teleop.devices import scripted, keyboard, gamepad, corrector  # noqa: F401  (each registers its device)

# No local device: the loop subscribes to control.input_endpoint, where a VR bridge or another machine publishes.
register_remote_device("zmq")

__all__ = ["DEVICES", "DeviceContext", "InputDevice", "device_names", "open_device", "register_device",
           "register_remote_device"]
