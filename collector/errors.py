"""The project's error types: each carries a message a user can act on."""


class CollectorError(Exception):
    """Base for every error the CLI reports as a one-line message instead of a traceback."""


class ConfigError(CollectorError):
    """A robot, scene, plan or preset file is wrong: names the file, the key and the problem."""


class DeviceError(CollectorError):
    """An input device or robot connection is missing or failed."""


class DataError(CollectorError):
    """A sample, stream or file does not hold what it should."""
