"""The operator's hand-size calibration as a session step (a robot with `hands:`, VR hand tracking).

Before the first take of `collector session` / `collect`, the operator holds both hands open and flat in
front of the headset. Each tracked skeleton that arrives from the VR bridge is measured
(HandRetargeter.calibrate: robot finger length / operator finger length, per finger); once both hands
measure well for HOLD_S without a break, the median of those measurements is the operator's
calibration. A bent finger or a hand out of view is one line on the dashboard and the headset, and the
step goes on (it repeats until the hands are held right).

The calibration is stored with the operator, per robot, in the dataset folder:
`operators/<operator>.json` (`{"operator", "hand_calibration": {robot: {"measured_at", "sides":
{side: HandCalibration.to_dict()}}}}`), so a later session of the same operator on the same dataset
reuses it without asking. Every take's episode metadata carries it (`hand_calibration`: operator, robot,
measured_at, sides), and the retargeter of the take's rig uses it.
"""
from __future__ import annotations

import json
import os
import statistics
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Dict, List, Optional

from collector.errors import ConfigError, DataError
from collector.session.layout import station_slug

HOLD_S = 0.5  # the open flat hands must measure well this long without a break
PROMPT = "hand calibration: hold both hands open and flat, fingers together, in view of the headset"
OPERATORS_DIR = "operators"


def needs_hand_calibration(robot, operator_input: str) -> bool:
    """A robot with multi-finger hands driven from VR hand tracking."""
    return bool(getattr(robot, "hands", None)) and operator_input == "vr"


# -- where it is kept ------------------------------------------------------------------------------

class OperatorSettings:
    """One operator's settings file in the dataset folder (operators/<operator>.json)."""

    def __init__(self, dataset_root, operator: str):
        self.operator = operator
        self.path = Path(dataset_root) / OPERATORS_DIR / f"{station_slug(operator)}.json"

    def read(self) -> dict:
        if not self.path.is_file():
            return {}
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{self.path}: not a readable operator settings file ({exc}); "
                              "fix or remove it to calibrate again") from None
        if not isinstance(document, dict):
            raise ConfigError(f"{self.path}: expected a JSON object")
        return document

    def hand_calibration(self, robot: str) -> Optional[dict]:
        """{"measured_at", "sides": {side: HandCalibration}} for `robot`, or None if never measured."""
        from collector.teleop.hand_retarget import HandCalibration

        entry = (self.read().get("hand_calibration") or {}).get(robot)
        if entry is None:
            return None
        where = f"{self.path}: hand_calibration.{robot}"
        if not isinstance(entry, dict) or not isinstance(entry.get("sides"), dict) or not entry["sides"]:
            raise ConfigError(f"{where}: expected measured_at and sides")
        sides = {side: HandCalibration.from_dict(raw, f"{where}.sides.{side}") for side, raw in entry["sides"].items()}
        return {"measured_at": str(entry.get("measured_at", "")), "sides": sides}

    def store_hand_calibration(self, robot: str, sides: Dict[str, object]) -> str:
        """Keep the calibration for `robot` (the operator's other settings stay); returns measured_at."""
        document = self.read()
        measured_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        document["operator"] = self.operator
        document.setdefault("hand_calibration", {})[robot] = {
            "measured_at": measured_at, "sides": {side: c.to_dict() for side, c in sides.items()}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".json.tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(document, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        return measured_at


# -- measuring -------------------------------------------------------------------------------------

class OpenHandMeasurement:
    """Feeds on tracked skeletons; done once both hands measured well for HOLD_S in a row."""

    def __init__(self, robot, hold_s: float = HOLD_S):
        from collector.teleop.hand_retarget import HandRetargeter

        self.retargeter = HandRetargeter(robot)
        self.sides = list(self.retargeter.sides)
        self.hold_s = hold_s
        self.problem: Optional[str] = None  # why the latest message did not measure, one line
        self._good: List[tuple] = []  # (t, {side: HandCalibration}) since the last bad message

    def add(self, t: float, msg) -> None:
        measured = {}
        for side in self.sides:
            skeleton = msg.hand(side)
            if skeleton is None:
                self._bad(f"hand calibration: the {side} hand is not tracked; show both hands to the headset")
                return
            try:
                measured[side] = self.retargeter.calibrate(side, skeleton)
            except DataError as exc:
                self._bad(str(exc))
                return
        self.problem = None
        self._good.append((t, measured))

    def _bad(self, problem: str) -> None:
        self.problem = problem
        self._good = []

    @property
    def done(self) -> bool:
        return len(self._good) > 1 and self._good[-1][0] - self._good[0][0] >= self.hold_s

    def result(self) -> Dict[str, object]:
        """Per side, the median scale of each finger over the held stretch."""
        from collector.teleop.hand_retarget import HandCalibration

        out = {}
        for side in self.sides:
            fingers = self._good[0][1][side].finger_scales
            out[side] = HandCalibration(side=side, finger_scales={
                f: statistics.median(m[side].finger_scales[f] for _, m in self._good) for f in fingers})
        return out


def measure_open_hands(robot, endpoint: str, tell: Callable[[str], None], stopped: Callable[[], bool],
                       hold_s: float = HOLD_S) -> Optional[Dict[str, object]]:
    """Read the VR bridge's operator input at `endpoint` until both hands measure open and flat (returns
    side -> HandCalibration) or `stopped()` (returns None). `tell` gets each new one-line instruction."""
    from collector.teleop.zmq_link import InputSubscriber

    measurement = OpenHandMeasurement(robot, hold_s)
    subscriber = InputSubscriber(endpoint)
    said = None

    def say(line: str) -> None:
        nonlocal said
        if line != said:
            said = line
            tell(line)

    try:
        say(PROMPT)
        while not stopped():
            for received, msg in subscriber.receive(timeout_s=0.1):
                measurement.add(received, msg)
                if measurement.done:
                    return measurement.result()
            say(measurement.problem or PROMPT)
        return None
    finally:
        subscriber.close()


# -- the step ----------------------------------------------------------------------------------------

class HandCalibrationStep:
    """The session's calibration step: `ensure()` before the first take (stored, else measured), then
    `before_take()` at every take's start (EpisodeLifecycle.begin): the take's retargeter uses it and its
    episode metadata records it."""

    def __init__(self, runner, endpoint: str):
        self.runner = runner
        self.endpoint = endpoint
        self.robot = _robot_of(runner.driver)
        self.calibration: Optional[dict] = None  # {"operator", "robot", "measured_at", "sides": {side: HandCalibration}}

    def _settings(self) -> OperatorSettings:
        return OperatorSettings(self.runner.layout.root, self.runner.operator)

    def is_current(self) -> bool:
        """True when the calibration in use is the current operator's (a new person may have logged in)."""
        return self.calibration is not None and self.calibration["operator"] == self.runner.operator

    def is_stored(self) -> bool:
        """True when the current operator's calibration for this robot is kept (no measuring needed)."""
        return self._settings().hand_calibration(self.robot.name) is not None

    def ensure(self, tell: Callable[[str], None], stopped: Callable[[], bool]) -> bool:
        """The operator's calibration, from their settings or measured now; False if stopped meanwhile."""
        operator, settings = self.runner.operator, self._settings()
        stored = settings.hand_calibration(self.robot.name)
        if stored is not None:
            self.calibration = {"operator": operator, "robot": self.robot.name, **stored}
            tell(f"hand calibration of {operator} from {settings.path.name} ({stored['measured_at']})")
            return True
        sides = measure_open_hands(self.robot, self.endpoint, tell, stopped)
        if sides is None:
            return False
        measured_at = settings.store_hand_calibration(self.robot.name, sides)
        self.calibration = {"operator": operator, "robot": self.robot.name, "measured_at": measured_at, "sides": sides}
        scales = ", ".join(f"{side} {c.scale:.2f}" for side, c in sides.items())
        tell(f"hand calibration of {operator} measured (scale {scales}); kept in {settings.path.name}")
        return True

    def before_take(self) -> dict:
        """Hand the calibration to the rig that records this take; the episode metadata it goes into."""
        if self.calibration is None:
            return {}
        drive = _hand_drive(self.runner.driver)
        if drive is not None:
            drive.set_calibrations(self.calibration["sides"])
        return {"hand_calibration": {**self.calibration,
                                     "sides": {s: c.to_dict() for s, c in self.calibration["sides"].items()}}}


def _hand_drive(driver):
    """The HandDrive of the rig the driver records with now (SimDriver: the current task's rig)."""
    loop = getattr(driver, "loop", None)
    if loop is None:
        rig = getattr(driver, "_current", None)
        loop = getattr(rig, "loop", None)
    retargeter = getattr(loop, "retargeter", None)
    return getattr(retargeter, "hands", None)


def _robot_of(driver):
    """The driver's RobotSpec (SimDriver loads one; a hardware driver's is its backend's)."""
    return driver.robot or getattr(getattr(driver, "loop", None), "robot", None)


def hand_calibration_step(runner, operator_input: str) -> Optional[HandCalibrationStep]:
    """The step for this session, attached to its lifecycle; None when the robot or input needs none."""
    driver = runner.driver
    if not needs_hand_calibration(_robot_of(driver), operator_input):
        return None
    step = HandCalibrationStep(runner, driver.config.control.input_endpoint)
    runner.lifecycle.hand_calibration = step
    return step


def calibrate_before_first_take(runner, operator_input: str, stopped: Callable[[], bool] = lambda: False) -> None:
    """`collector collect`: the step on the terminal (Ctrl-C interrupts it like a take)."""
    step = hand_calibration_step(runner, operator_input)
    if step is not None:
        step.ensure(tell=lambda line: print(line, flush=True), stopped=stopped)

