"""Input devices by name: each device module registers itself with the settings dataclass it reads.

    @register_device("keyboard", config=KeyboardConfig)
    class KeyboardDevice(InputDevice): ...

    device = open_device("keyboard", teleop_config)   # built from teleop.yaml's devices.keyboard

A device's settings are the `devices.<name>` section of the teleop config; a device registered
from outside the project, which that section does not know, gets its config dataclass's defaults.
A name registered as remote (`zmq`) has no local device: the loop subscribes to the input
endpoint, where a remote machine or the VR bridge publishes, and `open_device` returns None.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple

from collector.errors import ConfigError

DeviceFactory = Callable[..., Any]  # factory(settings, **kwargs) -> InputDevice


@dataclass(frozen=True)
class DeviceEntry:
    name: str
    factory: Optional[DeviceFactory]  # None: no local device (input arrives over ZMQ)
    config: Optional[type]  # the settings dataclass the factory takes first

    def settings(self, teleop_config) -> Any:
        """This device's section of the teleop config, or its dataclass's defaults if there is none."""
        section = getattr(teleop_config.devices, self.name, None)
        if section is None and self.config is not None:
            return self.config()
        return section


class DeviceRegistry:
    """Device names -> factories, in registration order (the project's registry is DEVICES below)."""

    def __init__(self):
        self._entries: Dict[str, DeviceEntry] = {}

    def register(self, name: str, factory: Optional[DeviceFactory] = None, *, config: Optional[type] = None):
        """Register `factory` (a device class, or a function taking the settings first) under `name`;
        called without a factory, a class decorator that does so."""
        if factory is None:
            return lambda cls: self.register(name, cls, config=config)
        self._add(DeviceEntry(name, factory, config))
        return factory

    def register_remote(self, name: str) -> None:
        """A name with no local device: the loop subscribes to the input endpoint instead."""
        self._add(DeviceEntry(name, None, None))

    def _add(self, entry: DeviceEntry) -> None:
        existing = self._entries.get(entry.name)
        if existing is not None and existing != entry:
            raise ValueError(f"input device {entry.name!r} is already registered ({existing.factory!r})")
        self._entries[entry.name] = entry

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def names(self) -> Tuple[str, ...]:
        """Registered names, in registration order."""
        return tuple(self._entries)

    def entry(self, name: str) -> DeviceEntry:
        entry = self._entries.get(name)
        if entry is None:
            raise ConfigError(f"unknown input device {name!r}; choose one of {list(self._entries)}")
        return entry

    def open(self, name: str, teleop_config, **kwargs):
        """The device `name` built from its settings, or None for a name without a local device."""
        entry = self.entry(name)
        if entry.factory is None:
            return None
        return entry.factory(entry.settings(teleop_config), **kwargs)


DEVICES = DeviceRegistry()
register_device = DEVICES.register
register_remote_device = DEVICES.register_remote
open_device = DEVICES.open
device_names = DEVICES.names
