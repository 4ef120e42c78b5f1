"""Input devices by name: registering, opening with their config section, unknown names, every shipped
device registered; and the one interface style (abstract base classes) of devices, sinks and take drivers."""
import dataclasses
import os
import pkgutil
from dataclasses import dataclass

import pytest

import collector.teleop.devices as devices_package
from collector.errors import ConfigError, DeviceError
from collector.recorder.streams import Sink
from collector.session.runner import TakeDriver
from collector.teleop.config import DevicesConfig, load_teleop_config
from collector.teleop.devices import DEVICES, InputDevice, device_names, open_device, register_device
from collector.teleop.devices.corrector import ScriptedCorrector
from collector.teleop.devices.gamepad import GamepadDevice
from collector.teleop.devices.keyboard import KeyboardDevice
from collector.teleop.devices.registry import DeviceRegistry
from collector.teleop.devices.scripted import ScriptedOperator

CFG = load_teleop_config()
NOT_DEVICE_MODULES = {"base", "registry"}


@dataclass
class KnobConfig:
    gain: float = 2.5


class KnobDevice(InputDevice):
    name = "knob"

    def __init__(self, cfg: KnobConfig, port: str = "/dev/null"):
        self.cfg = cfg
        self.port = port

    def start(self, context) -> None:
        pass

    def poll(self, now):
        return None


def test_every_shipped_device_is_registered_with_its_config_section():
    assert device_names() == ("scripted", "keyboard", "gamepad", "corrector", "zmq")
    for name, cls in {"scripted": ScriptedOperator, "keyboard": KeyboardDevice, "gamepad": GamepadDevice,
                      "corrector": ScriptedCorrector}.items():
        entry = DEVICES.entry(name)
        assert entry.factory is cls and issubclass(cls, InputDevice) and cls.name == name
        # The settings dataclass a device registers is the type of its section in teleop.yaml.
        assert isinstance(getattr(CFG.devices, name), entry.config)
        assert entry.settings(CFG) is getattr(CFG.devices, name)
    assert DEVICES.entry("zmq").factory is None and open_device("zmq", CFG) is None


def test_every_device_module_registers_a_device():
    modules = {m.name for m in pkgutil.iter_modules(devices_package.__path__)} - NOT_DEVICE_MODULES
    local = [n for n in device_names() if DEVICES.entry(n).factory is not None]
    assert {DEVICES.entry(n).factory.__module__.rsplit(".", 1)[1] for n in local} == modules
    # Each shipped device has its own section in teleop.yaml (devices.<name>).
    assert set(local) == {f.name for f in dataclasses.fields(DevicesConfig)}


def test_open_device_builds_each_shipped_device_from_its_section(tmp_path):
    scripted = open_device("scripted", CFG, seed=7)
    assert isinstance(scripted, ScriptedOperator) and scripted.cfg is CFG.devices.scripted and scripted.seed == 7
    master, slave = os.openpty()
    try:
        keyboard = open_device("keyboard", CFG, fd=slave, echo_help=False)
        assert isinstance(keyboard, KeyboardDevice) and keyboard.cfg is CFG.devices.keyboard
        keyboard.close()
    finally:
        os.close(master)
    with pytest.raises(DeviceError, match="does not exist"):  # the keyword reaches GamepadDevice
        open_device("gamepad", CFG, path=str(tmp_path / "event99"))


def test_unknown_name_is_a_config_error_listing_the_registered_devices():
    with pytest.raises(ConfigError) as err:
        open_device("joystick9000", CFG)
    message = str(err.value)
    assert "unknown input device 'joystick9000'" in message
    for name in device_names():
        assert repr(name) in message


def test_a_registered_device_opens_by_name_with_its_config_defaults():
    registry = DeviceRegistry()
    returned = registry.register("knob", config=KnobConfig)(KnobDevice)
    assert returned is KnobDevice and registry.names() == ("knob",)
    # The teleop config has no devices.knob section: the device gets its dataclass's defaults.
    device = registry.open("knob", CFG, port="/dev/ttyUSB0")
    assert isinstance(device, KnobDevice) and device.cfg == KnobConfig(gain=2.5) and device.port == "/dev/ttyUSB0"
    with pytest.raises(ConfigError, match=r"choose one of \['knob'\]"):
        registry.open("scripted", CFG)


def test_registering_on_the_project_registry_makes_the_name_usable_everywhere():
    register_device("knob", KnobDevice, config=KnobConfig)
    try:
        assert device_names()[-1] == "knob"
        assert isinstance(open_device("knob", CFG), KnobDevice)
    finally:
        DEVICES.unregister("knob")
    assert "knob" not in device_names()


def test_a_name_cannot_be_taken_by_another_device():
    registry = DeviceRegistry()
    registry.register("knob", KnobDevice, config=KnobConfig)
    registry.register("knob", KnobDevice, config=KnobConfig)  # the same registration again (a re-import) is fine
    with pytest.raises(ValueError, match="already registered"):
        registry.register("knob", ScriptedOperator, config=KnobConfig)
    registry.register_remote("udp")
    assert registry.open("udp", CFG) is None and registry.names() == ("knob", "udp")


@pytest.mark.parametrize("base, required", [(InputDevice, {"start", "poll"}), (Sink, {"push"}),
                                            (TakeDriver, {"streams", "prepare", "run"})])
def test_interfaces_are_abstract_base_classes(base, required):
    assert base.__abstractmethods__ == frozenset(required)
    incomplete = type("Incomplete", (base,), {})
    with pytest.raises(TypeError, match="abstract"):
        incomplete()
