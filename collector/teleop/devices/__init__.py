"""Operator input devices. Each produces OperatorInput messages; the loop publishes them over ZMQ
and reads them back, so every device reaches the robot through the same path as a VR headset."""
from collector.teleop.devices.base import DeviceContext, InputDevice

__all__ = ["DeviceContext", "InputDevice", "open_device", "DEVICE_NAMES"]

DEVICE_NAMES = ("scripted", "keyboard", "gamepad", "zmq")


def open_device(name: str, config, **kwargs):
    """A local device by name (`zmq` has no local device: the loop subscribes to the endpoint instead)."""
    from collector.errors import ConfigError

    if name == "keyboard":
        from collector.teleop.devices.keyboard import KeyboardDevice
        return KeyboardDevice(config.devices.keyboard, **kwargs)
    if name == "gamepad":
        from collector.teleop.devices.gamepad import GamepadDevice
        return GamepadDevice(config.devices.gamepad, **kwargs)
    if name == "scripted":
        from collector.teleop.devices.scripted import ScriptedOperator
        return ScriptedOperator(config.devices.scripted, **kwargs)
    if name == "zmq":
        return None
    raise ConfigError(f"unknown input device {name!r}; choose one of {list(DEVICE_NAMES)}")
