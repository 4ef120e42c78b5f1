"""`collector doctor`: check that this machine can simulate, render, record and talk ROS 2."""
import importlib
import os


def _check_render():
    import mujoco

    model = mujoco.MjModel.from_xml_string(
        "<mujoco><worldbody><light pos='0 0 2'/><geom type='sphere' size='.1'/></worldbody></mujoco>"
    )
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    with mujoco.Renderer(model, 48, 64) as renderer:
        renderer.update_scene(data)
        image = renderer.render()
    return f"{os.environ.get('MUJOCO_GL')} {image.shape[1]}x{image.shape[0]} ok"


def _check_module(name, attr="__version__"):
    def check():
        module = importlib.import_module(name)
        return str(getattr(module, attr, "ok"))

    return check


def _check_realtime():
    from collector.teleop.config import load_teleop_config
    from collector.teleop.realtime import fifo_permitted

    priority = load_teleop_config().control.realtime_priority
    if priority <= 0:
        return "control.realtime_priority is 0: normal scheduling"
    if not fifo_permitted(priority):
        raise PermissionError(
            f"SCHED_FIFO priority {priority} not permitted: the realtime loop runs with normal scheduling "
            f"(jitter of milliseconds on a busy machine); grant CAP_SYS_NICE or add '<user> - rtprio {priority}' "
            f"to /etc/security/limits.conf")
    return f"SCHED_FIFO {priority} permitted"


CHECKS = [
    ("mujoco", _check_module("mujoco")),
    ("offscreen rendering", _check_render),
    ("mink", _check_module("mink", "__name__")),
    ("h5py", _check_module("h5py")),
    ("opencv", _check_module("cv2")),
    ("pyzmq", _check_module("zmq")),
    ("rclpy (ROS 2, optional)", _check_module("rclpy", "__name__")),
    ("realtime scheduling (optional)", _check_realtime),
]


def run(args) -> int:
    failed = 0
    for label, check in CHECKS:
        try:
            status = check()
            print(f"  ok    {label}: {status}")
        except Exception as exc:  # a doctor reports every failure and keeps going
            failed += 0 if "optional" in label else 1
            print(f"  FAIL  {label}: {type(exc).__name__}: {exc}")
    print("all required checks passed" if not failed else f"{failed} required check(s) failed")
    return 1 if failed else 0


def register(subparsers):
    parser = subparsers.add_parser("doctor", help="check the simulator, renderer, recorder and ROS 2 installs")
    parser.set_defaults(func=run)
