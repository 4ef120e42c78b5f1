"""`collector replay EPISODE`: replay a recorded take in simulation or on ROS 2 topics.

  --sim (default)  kinematic replay in the MuJoCo scene rebuilt from the episode's conditions (task,
                   theme, seed, lighting, weights): restores the recorded world state (robot, objects,
                   particles) frame by frame, or moves only the robot for episodes without one (or
                   --robot-only); renders an MP4 with each recorded camera view next to the replayed
                   one, and reports per camera the worst frames' share of differing pixels, flagging
                   a camera whose replay visibly differs.
  --sim --actions  re-executes the recorded commands in the physics from the recorded start state;
                   reports per-joint drift from the recording (RMS / max / final, rad or m) and
                   whether the task succeeds again, and renders the same side-by-side MP4.
  --ros2           publishes every recorded stream on its ROS 2 topic with the original timing, like
                   a bag player: --rate scales time, --loop repeats, --start skips into the episode.
                   Commands go to /collector/command unless --drive-robot sends them to the robot's
                   trajectory controller.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from collector.errors import ConfigError


def _print_sim(report, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
        return
    print(f"{report.mode} replay of {report.episode}: {report.frames} frame(s)"
          + (f", {report.steps} physics steps" if report.steps else ""))
    for note in report.condition_notes:
        print(f"  note: {note}")
    if report.mode == "kinematic":
        print(f"  world state: {report.world_state}")
    for camera, diff in report.image_difference.items():
        m = report.cameras.get(camera)
        if not m:
            print(f"  {camera}: mean |recorded - replayed| = {diff:.2f} (0..255)")
            continue
        verdict = "DIFFERS" if m["flagged"] else "matches"
        print(f"  {camera}: {verdict}: worst frame {m['max_share_differing']:.2%} of pixels differ "
              f"(> {m['pixel_threshold']} levels; flagged above {m['flag_share']:.1%}), "
              f"{m['frames_flagged']}/{m['frames']} frames over; mean |recorded - replayed| {m['mean']:.2f}, "
              f"worst frame mean {m['max_frame_mean']:.2f}; worst frames {m['worst_frames']}")
    if report.drift:
        print(f"  joint drift from the recording: rms {report.rms_drift:.5f}, max {report.max_drift:.5f}")
        print(f"  {'joint':<24} {'rms':>10} {'max':>10} {'final':>10}")
        for d in report.drift:
            print(f"  {d.joint:<24} {d.rms:>10.5f} {d.max:>10.5f} {d.final:>10.5f}")
        print(f"  task success: recorded outcome {report.recorded_outcome}, replay "
              f"{'success' if report.replayed_success else 'failure'}")
    if report.video:
        print(f"  video: {report.video}")


def run(args) -> int:
    if args.ros2 and (args.actions or args.sim):
        raise ConfigError("choose --sim (optionally with --actions) or --ros2, not both")
    episode = Path(args.episode)
    if args.ros2:
        from collector.replay.ros2_player import Ros2Player

        with Ros2Player(episode, rate=args.rate, loops=0 if args.loop else 1, start_offset_s=args.start,
                        duration_s=args.duration, streams=args.streams, drive_robot=args.drive_robot,
                        stamps=args.stamps, robot=args.robot, domain_id=args.domain_id,
                        wait_for_subscribers_s=args.wait_subscribers) as player:
            if not args.json:
                print(f"publishing {len(player.schedule)} samples of {episode} at {args.rate:g}x on:")
                for topic, ros_type in sorted(player.topics().items()):
                    print(f"  {topic}  [{ros_type}]")
            report = player.run()
        if args.json:
            print(json.dumps(report.as_dict(), indent=2))
        else:
            print(f"published {sum(report.published.values())} messages in {report.wall_s:.2f} s "
                  f"({report.loops} loop(s); late by p99 {report.p99_late_s * 1e3:.1f} ms, "
                  f"max {report.max_late_s * 1e3:.1f} ms){' - stopped' if report.stopped_early else ''}")
        return 0

    from collector.replay.sim_replay import action_replay, kinematic_replay

    video = None if args.no_video else Path(args.out or f"{episode.stem}_{'actions' if args.actions else 'replay'}.mp4")
    if args.actions:
        report = action_replay(episode, video=video, cameras=args.cameras, robot=args.robot, height=args.height)
    else:
        report = kinematic_replay(episode, video=video, cameras=args.cameras, robot=args.robot, height=args.height,
                                  max_frames=args.max_frames, use_world_state=not args.robot_only)
    _print_sim(report, args.json)
    return 0


def register(subparsers):
    parser = subparsers.add_parser("replay", help="replay an episode in MuJoCo (kinematic or physics) or on ROS 2",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("episode", metavar="EPISODE", help="an episode file (.hdf5 or .h5)")
    mode = parser.add_argument_group("mode")
    mode.add_argument("--sim", action="store_true", help="replay in the MuJoCo scene (the default)")
    mode.add_argument("--actions", action="store_true", help="with --sim: re-execute the recorded commands in physics")
    mode.add_argument("--ros2", action="store_true", help="publish the recorded streams on ROS 2 topics")
    parser.add_argument("--robot", metavar="NAME", help="robot to use (default: the one recorded in the episode)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    sim = parser.add_argument_group("--sim options")
    sim.add_argument("--out", "-o", metavar="FILE.mp4", help="video path (default: <episode>_replay.mp4)")
    sim.add_argument("--no-video", action="store_true", help="only the report, no video")
    sim.add_argument("--cameras", nargs="+", metavar="CAM", help="cameras to render (default: all recorded)")
    sim.add_argument("--height", type=int, default=240, help="height of each view in the video (default 240)")
    sim.add_argument("--max-frames", type=int, metavar="N", help="kinematic: stop after N aligned rows")
    sim.add_argument("--robot-only", action="store_true",
                     help="kinematic: move only the robot, ignoring the recorded world state (objects, particles)")
    ros = parser.add_argument_group("--ros2 options")
    ros.add_argument("--rate", type=float, default=1.0, help="playback speed factor (default 1.0)")
    ros.add_argument("--loop", action="store_true", help="repeat until Ctrl-C")
    ros.add_argument("--start", type=float, default=0.0, metavar="S", help="start S seconds into the episode")
    ros.add_argument("--duration", type=float, metavar="S", help="play only S seconds")
    ros.add_argument("--streams", nargs="+", metavar="STREAM", help="streams to publish (default: all)")
    ros.add_argument("--drive-robot", action="store_true",
                     help="send recorded commands to the robot's trajectory controller (moves a live robot!)")
    ros.add_argument("--stamps", choices=("now", "recorded"), default="now",
                     help="header stamps: publish time (default) or the recorded session-clock stamps")
    ros.add_argument("--domain-id", type=int, metavar="ID", help="ROS_DOMAIN_ID (default: the environment's)")
    ros.add_argument("--wait-subscribers", type=float, default=0.0, metavar="S",
                     help="wait up to S seconds for every topic to have a subscriber before starting")
    parser.set_defaults(func=run)
