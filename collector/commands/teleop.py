"""`collector teleop`: drive the simulated robot live (keyboard, gamepad, a VR bridge over ZMQ) or with the
scripted operator, through the full retargeting -> IK -> safety-gate loop; optionally record each episode."""
import json


def _run_episodes(args) -> int:
    from collector.sim import SimEnv
    from collector.teleop.backend import SimBackend
    from collector.teleop.config import load_teleop_config
    from collector.teleop.devices import open_device
    from collector.teleop.loop import TeleopLoop, run_episode

    overrides = {"control": {"input_endpoint": args.endpoint}} if args.endpoint else {}
    if args.bind:
        overrides.setdefault("control", {})["input_bind"] = True
    config = load_teleop_config(args.config, overrides=overrides)
    device = open_device(args.device, config) if args.device != "zmq" else None
    env = SimEnv(robot=args.robot, task=args.task, theme=args.theme, lighting=args.lighting, weight=args.weight,
                 seed=args.seed, control_hz=config.control.rate_hz)
    backend = SimBackend(env, render=args.record is not None and not args.no_cameras)
    realtime = args.realtime or args.device != "scripted"
    loop = TeleopLoop(backend, config=config, device=device)
    successes = 0
    try:
        if args.device == "zmq":
            print(f"listening for operator input on {loop.subscriber.endpoint} (topic collector/teleop/input)")
        for index in range(args.episodes):
            seed = args.seed + index
            conditions = backend.reset(seed=seed)
            writer = None
            if args.record is not None:
                from collector.recorder import EpisodeWriter

                writer = EpisodeWriter(args.record, f"teleop_{args.task}_{seed:06d}", loop.stream_specs(),
                                       metadata={"task": args.task, "instruction": env.task.instruction,
                                                 "robot": env.robot.name, "robot_model_hash": env.robot.model_hash,
                                                 "operator": args.device, "sim": True, "conditions": conditions,
                                                 **loop.recording_metadata()})
                writer.start()
            result = None
            try:
                result = run_episode(backend, device, sink=writer, max_duration_s=args.duration,
                                     stop_on_success=not args.no_stop_on_success, seed=seed, loop=loop,
                                     realtime=realtime)
            finally:
                loop.sink = None
                # An interrupted take is still kept (never lose recorded data), marked "unknown".
                outcome = "unknown" if result is None else ("success" if result.success else "failure")
                path = writer.stop(outcome=outcome) if writer is not None else None
            successes += int(result.success)
            stats = result.stats
            print(json.dumps({
                "episode": index, "seed": seed, "task": args.task, "success": result.success,
                "duration_s": round(result.duration_s, 3), "ticks": result.ticks, "metrics": result.metrics,
                "control_hz": _number(stats["control_hz"], 1), "ik_p99_ms": _number(stats["ik_ms"]["p99"], 3),
                "recorded": str(path) if path else None,
            }, default=str))
    finally:
        loop.close()
        env.close()
    print(f"{successes}/{args.episodes} episodes succeeded")
    return 0


def _number(value: float, digits: int):
    """Rounded, or None (JSON null) when there is nothing to report (NaN)."""
    return None if value != value else round(value, digits)


def run(args) -> int:
    return _run_episodes(args)


def register(subparsers):
    from collector.teleop.devices import DEVICE_NAMES

    parser = subparsers.add_parser(
        "teleop", help="teleoperate the simulated robot (scripted, keyboard, gamepad or ZMQ/VR input)",
        description="Run the teleop loop (operator input -> retargeting -> mink IK -> safety gate) on the "
                    "simulated robot. `--device scripted` plans and performs the task by itself; keyboard, "
                    "gamepad and zmq (a VR bridge) are live and paced in real time.")
    parser.add_argument("--device", choices=DEVICE_NAMES, default="scripted", help="operator input (default scripted)")
    parser.add_argument("--task", default="pick_place", help="sim task: pick_place or pour (default pick_place)")
    parser.add_argument("--robot", default="humanoid", help="robot name under robots/ or a robot YAML path")
    parser.add_argument("--lighting", default="bright", help="lighting preset (configs/lighting.yaml)")
    parser.add_argument("--weight", default="medium", help="object weight preset (configs/weights.yaml)")
    parser.add_argument("--theme", default="kitchen", help="scene theme (configs/themes.yaml)")
    parser.add_argument("--seed", type=int, default=0, help="first episode seed; episode i uses seed+i")
    parser.add_argument("--episodes", type=int, default=1, help="number of episodes (default 1)")
    parser.add_argument("--duration", type=float, default=60.0, help="max seconds per episode (default 60)")
    parser.add_argument("--endpoint", help="ZMQ endpoint for --device zmq (default from configs/teleop.yaml)")
    parser.add_argument("--bind", action="store_true", help="bind the ZMQ endpoint instead of connecting")
    parser.add_argument("--config", help="teleop YAML (default configs/teleop.yaml)")
    parser.add_argument("--realtime", action="store_true",
                        help="pace the scripted operator in wall-clock time (live devices always are)")
    parser.add_argument("--no-stop-on-success", action="store_true", help="keep going after the task succeeds")
    parser.add_argument("--record", metavar="DIR", help="record each episode as HDF5 into DIR")
    parser.add_argument("--no-cameras", action="store_true", help="with --record: do not render cameras")
    parser.set_defaults(func=run)
