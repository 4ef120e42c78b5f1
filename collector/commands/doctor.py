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


CHECKS = [
    ("mujoco", _check_module("mujoco")),
    ("offscreen rendering", _check_render),
    ("mink", _check_module("mink", "__name__")),
    ("h5py", _check_module("h5py")),
    ("opencv", _check_module("cv2")),
    ("pyzmq", _check_module("zmq")),
    ("rclpy (ROS 2, optional)", _check_module("rclpy", "__name__")),
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
