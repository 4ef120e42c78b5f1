"""`collector teleop`: drive the simulated robot live (keyboard, gamepad, a VR bridge over ZMQ) or with the
scripted operator, through the full retargeting -> IK -> safety-gate loop; optionally record each episode."""
import json


def _run_episodes(args) -> int:
    from collector.errors import ConfigError
    from collector.teleop.config import load_teleop_config
    from collector.teleop.devices.scripted import operator_phases_metadata
    from collector.teleop.rig import build_sim_rig

    overrides = {"control": {"input_endpoint": args.endpoint}} if args.endpoint else {}
    if args.bind:
        overrides.setdefault("control", {})["input_bind"] = True
    config = load_teleop_config(args.config, overrides=overrides)
    device = "corrector" if args.policy and args.device == "scripted" else args.device
    if args.policy and args.no_cameras:
        raise ConfigError("--policy needs the cameras the policy sees: drop --no-cameras")
    rig = build_sim_rig(robot=args.robot, task=args.task, device=device, config=config,
                        render=(args.record is not None or args.policy is not None or args.display is not None)
                        and not args.no_cameras,
                        theme=args.theme, lighting=args.lighting, weight=args.weight, seed=args.seed,
                        policy=args.policy, async_render=not (args.policy and device == "corrector"))
    env = rig.backend.env
    realtime = args.realtime or args.device != "scripted"
    successes = 0
    display = None
    try:
        if args.display is not None:  # the live take in Rerun, from its own thread (collector/review/live_display.py)
            from collector.review.live_display import open_display

            display = open_display(args.display, robot=args.robot)
        if args.device == "zmq":
            print(f"listening for operator input on {rig.loop.subscriber.endpoint} (topic collector/teleop/input)")
        for index in range(args.episodes):
            seed = args.seed + index
            conditions = rig.backend.reset(seed=seed)
            if rig.takeover is not None:
                rig.takeover.tell()  # an object the policy never learned: one error line
            writer = None
            if args.record is not None:
                writer = rig.recorder(args.record, f"teleop_{args.task}_{seed:06d}",
                                      {"task": args.task, "instruction": env.task.instruction,
                                       "robot": env.robot.name, "robot_model_hash": env.robot.model_hash,
                                       "operator": args.device, "sim": True, "conditions": conditions})
            result = None
            try:
                sink = writer if display is None else display.take(
                    f"teleop_{args.task}_{seed:06d}", rig.loop.stream_specs(), writer)
                result = rig.run_episode(args.duration, sink=sink, seed=seed,
                                         stop_on_success=not args.no_stop_on_success, realtime=realtime)
            finally:
                # An interrupted take is still kept (never lose recorded data), marked "unknown".
                outcome = "unknown" if result is None else ("success" if result.success else "failure")
                updates = {"handovers": rig.handovers()} if rig.takeover is not None else {}
                updates.update(operator_phases_metadata(rig.device))
                path = writer.stop(outcome=outcome, metadata_updates=updates) if writer is not None else None
            successes += int(result.success)
            stats = result.stats
            print(json.dumps({
                "episode": index, "seed": seed, "task": args.task, "success": result.success,
                "duration_s": round(result.duration_s, 3), "ticks": result.ticks, "metrics": result.metrics,
                "control_hz": _number(stats["control_hz"], 1), "ik_p99_ms": _number(stats["ik_ms"]["p99"], 3),
                "recorded": str(path) if path else None,
                **({"handovers": rig.handovers()} if rig.takeover is not None else {}),
            }, default=str))
    finally:
        if display is not None:
            display.close()
        rig.close()
    print(f"{successes}/{args.episodes} episodes succeeded")
    return 0


def _number(value: float, digits: int):
    """Rounded, or None (JSON null) when there is nothing to report (NaN)."""
    return None if value != value else round(value, digits)


def run(args) -> int:
    return _run_episodes(args)


def register(subparsers):
    from collector.teleop.devices import device_names

    parser = subparsers.add_parser(
        "teleop", help="teleoperate the simulated robot (scripted, keyboard, gamepad or ZMQ/VR input)",
        description="Run the teleop loop (operator input -> retargeting -> mink IK -> safety gate) on the "
                    "simulated robot. `--device scripted` plans and performs the task by itself; keyboard, "
                    "gamepad and zmq (a VR bridge) are live and paced in real time.")
    parser.add_argument("--device", choices=device_names(), default="scripted",
                        help="operator input (default scripted)")
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
    parser.add_argument("--display", nargs="?", const="viewer", metavar="TARGET",
                        help="stream the live take to Rerun: a spawned viewer (no value), a rerun+http:// viewer "
                             "URL, or a .rrd file; the control loop's timing is unchanged")
    parser.add_argument("--policy", metavar="CHECKPOINT",
                        help="a trained policy drives; the operator takes over with one button (keyboard p, "
                             "gamepad Y, VR left thumbstick); with --device scripted the scripted corrector")
    parser.set_defaults(func=run)
