"""`collector ros sim-hw | recorder | teleop`: start one ROS 2 node of a collector session."""
import json
import logging
from pathlib import Path

from collector.errors import ConfigError

log = logging.getLogger(__name__)


def _size(text: str):
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"camera size {text!r}: expected WIDTHxHEIGHT, e.g. 320x240") from None
    if width <= 0 or height <= 0:
        raise ConfigError(f"camera size {text!r} must be positive")
    return width, height


def _camera_list(args):
    if args.no_cameras or (args.cameras or "").strip().lower() == "none":
        return []
    if args.cameras:
        return [c for c in args.cameras.split(",") if c]
    return None


def _ros_config(spec, args):
    from collector.ros.config import RosConfig

    return RosConfig.for_robot(spec, camera_transport=getattr(args, "camera_transport", None),
                               camera_reliability=getattr(args, "camera_qos", None),
                               stamp_source=getattr(args, "stamps", None))


def run_sim_hw(args) -> int:
    from collector.robot import load_robot
    from collector.ros.runtime import RosRuntime
    from collector.ros.sim_hardware import SimHardwareNode, SimHardwareOptions

    spec = load_robot(args.robot)
    config = _ros_config(spec, args)
    options = SimHardwareOptions(
        cameras=_camera_list(args), camera_size=_size(args.camera_size) if args.camera_size else None,
        camera_fps=args.camera_fps, camera_sync=args.camera_sync, real_time_factor=args.rtf,
        duration_s=args.duration, wait_for_subscribers_s=args.wait_for_subscribers,
        wait_for_commands_s=args.wait_for_commands, stats_file=args.stats_file)
    timestep = float(spec.physics.get("timestep", 0.002))
    joint_rate = args.joint_rate or 1.0 / timestep
    runtime = RosRuntime(args.node_name, domain_id=args.domain_id)
    try:
        from collector.sim import SimEnv

        env = SimEnv(robot=spec, task=args.task, theme=args.theme, lighting=args.lighting, weight=args.weight,
                     seed=args.seed, control_hz=joint_rate)
        node = SimHardwareNode(runtime, env, config, options)
        runtime.start()
        runtime.logger.info(f"sim hardware up: {spec.name}/{args.task}, joint states at {1 / env.control_dt:g} Hz "
                            f"on {config.joint_states_topic}, {len(node.cameras.cameras) if node.cameras else 0} "
                            f"camera(s), stamps {config.stamp_source}")
        stats = node.run()
        print(json.dumps({"sim_hardware": stats}), flush=True)
        env.close()
    finally:
        runtime.close()
    return 0


def run_recorder(args) -> int:
    import time

    from collector.robot import load_robot
    from collector.ros.recorder_node import RecorderNode, RecorderOptions
    from collector.ros.runtime import RosRuntime

    spec = load_robot(args.robot)
    config = _ros_config(spec, args)
    poses = {}
    for item in args.pose or []:
        name, sep, topic = item.partition("=")
        if not sep or not name or not topic:
            raise ConfigError(f"--pose {item!r}: expected NAME=TOPIC")
        poses[name] = topic
    config.pose_topics = {**config.pose_topics, **poses}
    options = RecorderOptions(
        output_dir=Path(args.output), session_id=args.session_id, task=args.task, instruction=args.instruction,
        operator=args.operator, station=args.station, cameras=_camera_list(args),
        camera_size=_size(args.camera_size) if args.camera_size else None,
        discover_poses=not args.no_discover_poses, lighting=args.lighting_preset, weight=args.weight_preset,
        conditions_topic=f"{args.sim_node}/conditions", task_state_topic=f"{args.sim_node}/task_state",
        joint_rate_hz=args.joint_rate, command_rate_hz=args.command_rate,
        record_illuminance={"auto": None, "on": True, "off": False}[args.illuminance])
    runtime = RosRuntime(args.node_name, domain_id=args.domain_id, stream_lane=True)
    recorder = None
    try:
        recorder = RecorderNode(runtime, spec, config, options)
        runtime.start()
        if args.start:
            time.sleep(args.start_delay)
            runtime.logger.info(f"recording {recorder.start_episode()}")
        runtime.logger.info(f"recorder up: episodes go to {options.output_dir}; "
                            f"services {runtime.node.get_fully_qualified_name()}/start_episode ...")
        recorder.publish_status()
        while runtime.ok():
            time.sleep(0.1)
    finally:
        # The take is finalized before ROS is torn down (the writer refuses samples arriving meanwhile;
        # a signal meanwhile only sets the runtime's stop flag): under load the executors' shutdown can
        # take seconds, and a supervisor escalating to SIGTERM and SIGKILL must not find the file unfinished.
        try:
            if recorder is not None:
                path = recorder.shutdown()
                if path:
                    print(json.dumps({"recorder": {"finalized": path}}), flush=True)
        finally:
            runtime.close()
    return 0


def _policy_rig(spec, config, args, device):
    """A rig whose policy commands the robot over ROS 2 (the operator's device stays connected but
    never in control): the same PolicySource that drives the sim, on its realtime thread."""
    from collector.policy.checkpoint import Checkpoint
    from collector.policy.source import policy_source
    from collector.ros.backend import RosBackend
    from collector.teleop.config import load_teleop_config
    from collector.teleop.rig import build_rig

    checkpoint = Checkpoint.load(args.policy)  # a bad file fails before anything connects
    teleop_config = load_teleop_config()
    backend = RosBackend(spec, config=config, domain_id=args.domain_id, sim_node=args.sim_node,
                         connect_timeout_s=args.connect_timeout)
    try:
        # The policy is told the task and target of the scene the sim node set up (or --instruction).
        scene = backend.wait_for_conditions(min(args.connect_timeout, 10.0))
        source = policy_source(checkpoint, backend, device=args.policy_device, instruction=args.instruction,
                               assists=teleop_config.policy_assists)
        try:
            if not args.reset:  # the first take is this scene: an unknown task or object fails now
                source.reset_instruction()
        except ConfigError as exc:
            if scene or args.instruction:
                raise
            raise ConfigError(f"{exc}; no scene conditions on {args.sim_node}/conditions (a real robot?): "
                              "tell the policy its task with --instruction") from None
        backend.wait_for_frames(source.cameras, args.camera_timeout)
    except BaseException:
        backend.close()
        raise
    return build_rig(backend, device, config=teleop_config, sources=[source], choose=lambda tick: source.id)


def run_teleop(args) -> int:
    from collector.robot import load_robot
    from collector.ros.teleop_node import TeleopOptions, teleop_main
    from collector.teleop.rig import build_ros_rig

    spec = load_robot(args.robot)
    config = _ros_config(spec, args)
    device = args.device or ("zmq" if args.policy else "scripted")
    options = TeleopOptions(device=device, episodes=args.episodes, max_duration_s=args.max_duration,
                            record=args.record, reset=args.reset, seed=args.seed, recorder_node=args.recorder_node,
                            sim_node=args.sim_node)
    if args.policy and not args.takeover:
        rig = _policy_rig(spec, config, args, device)
    elif args.policy:  # supervised: under the operator's deadman, one button hands control back and forth
        rig = build_ros_rig(spec, device=options.device, ros_config=config, domain_id=args.domain_id,
                            sim_node=options.sim_node, connect_timeout_s=args.connect_timeout, policy=args.policy)
        try:
            rig.backend.wait_for_frames(rig.takeover.policy.cameras, args.camera_timeout)
        except BaseException:
            rig.close()
            raise
    else:
        rig = build_ros_rig(spec, device=options.device, ros_config=config, domain_id=args.domain_id,
                            sim_node=options.sim_node, connect_timeout_s=args.connect_timeout)
    return teleop_main(rig, options)


def _common(parser, node_name: str):
    parser.add_argument("--robot", default="humanoid", help="robot name, directory or YAML (default humanoid)")
    parser.add_argument("--node-name", default=node_name, help=f"ROS node name (default {node_name})")
    parser.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default: the environment's)")
    parser.add_argument("--camera-transport", choices=("raw", "compressed"), default=None,
                        help="sensor_msgs/Image or CompressedImage (default: robot YAML ros.camera_transport, raw)")
    parser.add_argument("--camera-qos", choices=("best_effort", "reliable"), default=None,
                        help="camera reliability; every node of a session must agree (default best_effort)")


def register(subparsers):
    from collector.teleop.devices import device_names

    parser = subparsers.add_parser(
        "ros", help="start a ROS 2 node: simulated hardware, recorder, or teleop",
        description="ROS 2 nodes of a collector session (rclpy; topics from the robot YAML's ros section). "
                    "DDS stays on this machine (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST) and uses the shipped "
                    "Fast DDS profile unless FASTDDS_DEFAULT_PROFILES_FILE is set. See docs/ros2.md.")
    nodes = parser.add_subparsers(dest="node", metavar="NODE")

    sim = nodes.add_parser(
        "sim-hw", help="the MuJoCo humanoid as a ros2_control-style robot",
        description="Publish /joint_states at the physics rate, cameras, CameraInfo, illuminance and object poses; "
                    "accept JointTrajectory and per-group Float64MultiArray commands; ~/reset starts the next scene.")
    _common(sim, "sim_hardware")
    sim.add_argument("--task", default="pick_place")
    sim.add_argument("--theme", default="kitchen")
    sim.add_argument("--lighting", default="bright", help="lighting preset (configs/lighting.yaml)")
    sim.add_argument("--weight", default="medium", help="object weight preset (configs/weights.yaml)")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--joint-rate", type=float, default=None,
                     help="joint state rate in Hz (default: the physics rate, 500 Hz for the humanoid)")
    sim.add_argument("--cameras", default=None, help="comma-separated camera names, or none (default: all in the robot YAML)")
    sim.add_argument("--no-cameras", action="store_true", help="publish no cameras")
    sim.add_argument("--camera-size", default=None, help="WIDTHxHEIGHT for every camera (default: robot YAML)")
    sim.add_argument("--camera-fps", type=float, default=None, help="frame rate for every camera (default: YAML)")
    sim.add_argument("--camera-sync", choices=("wait", "drop"), default="wait",
                     help="when rendering falls behind: physics waits (default) or frames are dropped")
    sim.add_argument("--stamps", choices=("sim", "host"), default=None,
                     help="header stamps: sim time or host clock (default: robot YAML ros.stamp_source, sim)")
    sim.add_argument("--rtf", type=float, default=1.0, help="real-time factor; 0 runs as fast as possible")
    sim.add_argument("--duration", type=float, default=None, help="sim seconds to run, then exit")
    sim.add_argument("--wait-for-subscribers", type=float, default=0.0, metavar="SECONDS",
                     help="before stepping, wait up to this long until joint states and cameras have subscribers")
    sim.add_argument("--wait-for-commands", type=float, default=0.0, metavar="SECONDS",
                     help="before stepping, wait up to this long until a command topic has a publisher")
    sim.add_argument("--stats-file", default=None, help="write publish counts and rates as JSON here on exit")
    sim.set_defaults(func=run_sim_hw)

    rec = nodes.add_parser(
        "recorder", help="record ROS 2 topics into crash-safe HDF5 episodes",
        description="Subscribe to joint states, commands, cameras, illuminance and PoseStamped topics; episodes are "
                    "started and stopped through ~/start_episode, ~/stop_success, ~/stop_failure, ~/stop_episode and "
                    "~/discard_episode (std_srvs/Trigger); ~/status reports progress.")
    _common(rec, "recorder")
    rec.add_argument("--output", "-o", required=True, help="episode directory")
    rec.add_argument("--session-id", default="")
    rec.add_argument("--task", default="", help="task name (default: from the sim-hardware node)")
    rec.add_argument("--instruction", default="")
    rec.add_argument("--operator", default="")
    rec.add_argument("--station", default="")
    rec.add_argument("--lighting-preset", default="", help="lighting set up by the operator (real robot)")
    rec.add_argument("--weight-preset", default="", help="object weights set up by the operator (real robot)")
    rec.add_argument("--cameras", default=None, help="comma-separated camera names, or none (default: all in the robot YAML)")
    rec.add_argument("--no-cameras", action="store_true", help="record no cameras")
    rec.add_argument("--camera-size", default=None,
                     help="WIDTHxHEIGHT of every camera (default: as last received, else the robot YAML)")
    rec.add_argument("--pose", action="append", metavar="NAME=TOPIC", help="record a PoseStamped topic (repeatable)")
    rec.add_argument("--no-discover-poses", action="store_true",
                     help="do not record every PoseStamped topic found at episode start")
    rec.add_argument("--sim-node", default="/sim_hardware", help="where conditions and task state come from")
    rec.add_argument("--joint-rate", type=float, default=500.0, help="nominal joint state rate (gap checks)")
    rec.add_argument("--command-rate", type=float, default=100.0, help="nominal command rate (gap checks)")
    rec.add_argument("--illuminance", choices=("auto", "on", "off"), default="auto",
                     help="record the illuminance topic: auto = when it has a publisher at episode start")
    rec.add_argument("--start", action="store_true", help="start an episode right away")
    rec.add_argument("--start-delay", type=float, default=1.0, help="seconds to let discovery settle before --start")
    rec.set_defaults(func=run_recorder)

    tel = nodes.add_parser(
        "teleop", help="the teleop loop driving a robot over ROS 2",
        description="Run the teleop loop (retargeting, IK, safety gate) with RosBackend: commands go out on the "
                    "robot's command topics, state comes from /joint_states. Lost joint states stop commanding. "
                    "With --policy a trained policy commands through the same safety gate.")
    _common(tel, "collector_teleop")
    tel.add_argument("--device", default=None, choices=device_names(),
                     help="operator input (scripted needs the sim-hardware node; default scripted, "
                          "zmq with --policy)")
    tel.add_argument("--policy", default=None, metavar="CHECKPOINT",
                     help="a trained policy (collector train) commands the robot instead of the operator")
    tel.add_argument("--takeover", action="store_true",
                     help="with --policy: it moves only under the operator's deadman, and the operator's takeover "
                          "button hands control back and forth (as collector collect --policy)")
    tel.add_argument("--policy-device", default="cpu", help="torch device of the policy (default cpu)")
    tel.add_argument("--instruction", default="",
                     help="what the policy is told to do (default: the sim node's scene; needed on a real robot)")
    tel.add_argument("--camera-timeout", type=float, default=20.0, metavar="SECONDS",
                     help="with --policy: wait this long for a first frame of each camera it needs")
    tel.add_argument("--episodes", type=int, default=1)
    tel.add_argument("--max-duration", type=float, default=60.0, help="seconds per episode")
    tel.add_argument("--record", action="store_true", help="start/stop episodes on the recorder node")
    tel.add_argument("--reset", action="store_true", help="reset the simulated scene before each episode")
    tel.add_argument("--seed", type=int, default=None, help="operator seed (default: per episode from the scene)")
    tel.add_argument("--recorder-node", default="/recorder")
    tel.add_argument("--sim-node", default="/sim_hardware")
    tel.add_argument("--connect-timeout", type=float, default=60.0,
                     help="seconds to wait for the robot's first joint state")
    tel.set_defaults(func=run_teleop)

    def no_node(args):
        parser.print_help()
        return 2

    parser.set_defaults(func=no_node)
