"""`collector vr serve|replay|cert`: the WebXR bridge between an operator's VR headset and the teleop loop."""
from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from collector.errors import ConfigError, DataError

log = logging.getLogger(__name__)


def _certificate(args):
    from collector.teleop.vr.certificate import ensure_certificate, host_names

    return ensure_certificate(
        host_names(args.host, args.san or ()), cert_dir=args.cert_dir,
        cert_file=args.cert, key_file=args.key,
    )


def _print_banner(server, info, cfg, args) -> None:
    from collector.teleop.vr.certificate import trust_instructions
    from collector.teleop.vr.server import lan_addresses

    hosts = [args.host]
    if args.host in ("0.0.0.0", "::"):
        hosts = lan_addresses() or ["localhost"]
    print("collector VR bridge")
    for host in hosts:
        print(f"  open on the headset:  {server.url(host)}")
    print(f"  watch only:           {server.url(hosts[0])}&watch=1")
    if args.host in ("127.0.0.1", "localhost", "::1"):
        print("  (bound to this machine only: use --host 0.0.0.0 or a LAN address for a headset on the network,")
        print(f"   or connect a Quest by USB and run `adb reverse tcp:{server.port} tcp:{server.port}`)")
    print(trust_instructions(info, server.url(hosts[0])))
    print(f"  operator input  -> {cfg.input_endpoint} (ZMQ PUB, teleop wire form)")
    print(f"  camera feed     <- {cfg.camera_endpoint}   status <- {cfg.status_endpoint}")
    print(f"  episode events  -> {cfg.event_endpoint}")
    if cfg.record_path:
        print(f"  recording the operator's messages to {cfg.record_path}")
    print("Ctrl-C to stop.", flush=True)


async def _serve(args) -> int:
    from collector.web_auth import check_user_token
    from collector.teleop.vr.server import ServerConfig, VRServer, default_input_endpoint

    info = _certificate(args)
    cfg = ServerConfig(
        host=args.host, port=args.port, token=check_user_token(args.token) if args.token else None,
        ssl_context=info.ssl_context(), input_endpoint=args.input_endpoint or default_input_endpoint(),
        camera_endpoint=args.camera_endpoint, status_endpoint=args.status_endpoint,
        event_endpoint=args.event_endpoint, cameras=args.camera, allow_watchers=not args.no_watchers,
        record_path=args.record, max_frame_rate_hz=args.max_rate, max_frame_age_s=args.max_age_ms / 1000.0,
        cert_path=info.cert_path, allowed_origins=args.allow_origin or (),
    )
    server = VRServer(cfg)
    await server.start()
    demo = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        if args.test_pattern:
            from collector.teleop.vr.demo_feed import DemoFeed
            from collector.teleop.vr.feeds import CameraFeedPublisher, StatusPublisher

            demo = DemoFeed(CameraFeedPublisher(cfg.camera_endpoint), StatusPublisher(cfg.status_endpoint)).start()
        _print_banner(server, info, cfg, args)
        await stop.wait()
        print("stopping VR bridge", flush=True)
    finally:
        if demo is not None:
            demo.stop()
            demo.camera.close()
            demo.status.close()
        await server.stop()
    return 0


def run_serve(args) -> int:
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port} is not a TCP port")
    if args.max_rate <= 0 or args.max_age_ms <= 0:
        raise ConfigError("--max-rate and --max-age-ms must be positive")
    return asyncio.run(_serve(args))


async def _replay(args) -> int:
    from collector.teleop.vr.client import PageClient
    from collector.teleop.vr.recording import load_session

    messages = load_session(args.file)
    client = PageClient(args.url, cafile=args.cafile, client_name="collector-vr-replay")
    welcome = await client.connect()
    print(f"connected as {welcome['role']}; replaying {len(messages)} messages from {args.file}", flush=True)
    try:
        for _ in range(args.repeat):
            result = await client.replay(messages, speed=args.speed, rate_hz=args.rate)
            print(f"sent {result.sent} messages in {result.duration_s:.2f} s ({result.rate_hz:.1f}/s)")
        await asyncio.sleep(0.2)
        if client.errors:
            print(f"server rejected {len(client.errors)} message(s), first: {client.errors[0]}")
    finally:
        await client.close()
    return 1 if client.errors else 0


def run_replay(args) -> int:
    if args.speed <= 0 or (args.rate is not None and args.rate <= 0) or args.repeat < 1:
        raise ConfigError("--speed and --rate must be positive and --repeat at least 1")
    return asyncio.run(_replay(args))


def run_script(args) -> int:
    from collector.teleop.vr.recording import write_session
    from collector.teleop.vr.scripted_session import scripted_hand_session

    if args.rate <= 0:
        raise ConfigError("--rate must be positive")
    frames = scripted_hand_session(args.robot, args.task, args.seed, lighting=args.lighting, weight=args.weight,
                                   theme=args.theme, rate_hz=args.rate)
    try:
        path = write_session(args.out, frames)
    except OSError as exc:
        raise DataError(f"--out {args.out}: cannot write the session file ({exc.strerror or exc})") from None
    print(f"wrote {len(frames)} frames ({frames[-1][0]:.1f} s of {args.task} by the scripted operator's tracked "
          f"hands, seed {args.seed}) to {path}; play them with `collector vr replay`")
    return 0


def run_cert(args) -> int:
    from collector.teleop.vr.certificate import trust_instructions

    info = _certificate(args)
    print(f"certificate: {info.cert_path}\nkey:         {info.key_path}")
    print(f"covers:      {', '.join(info.names)}\nexpires:     {info.not_valid_after:%Y-%m-%d}")
    print(trust_instructions(info, f"https://{args.host}:8443/"))
    return 0


def _add_tls_args(parser) -> None:
    from collector.teleop.vr.certificate import default_cert_dir

    tls = parser.add_argument_group("TLS (WebXR needs https)")
    tls.add_argument("--cert", type=Path, help="your own certificate (PEM); default: a self-signed one")
    tls.add_argument("--key", type=Path, help="the private key for --cert (PEM)")
    tls.add_argument("--cert-dir", type=Path, default=None,
                     help=f"where the self-signed certificate is kept (default {default_cert_dir()})")
    tls.add_argument("--san", action="append", metavar="NAME",
                     help="extra host name or IP the self-signed certificate must cover (repeatable)")


def register(subparsers) -> None:
    from collector.teleop.vr.endpoints import CAMERA_ENDPOINT, DEFAULT_PORT, EVENT_ENDPOINT, STATUS_ENDPOINT

    parser = subparsers.add_parser(
        "vr", help="WebXR bridge for VR headsets (Quest, Vision Pro, PICO)",
        description="Serve the WebXR page a VR headset opens: it streams head, controller and hand poses "
                    "to the teleop loop over ZMQ and shows the robot's head camera and a status panel.",
    )
    sub = parser.add_subparsers(dest="vr_command", metavar="ACTION")
    parser.set_defaults(func=lambda args: parser.print_help() or 2)

    serve = sub.add_parser(
        "serve", help="start the HTTPS + WebSocket server",
        description="Start the VR bridge. Open the printed URL (it carries the session token) in the headset "
                    "browser; requests without the token get nothing. One operator controls the robot; "
                    "further connections may watch. Operator input goes to the teleop loop "
                    "(e.g. `collector session --plan PLAN --input vr`); the loop/session publish camera and status feeds back.",
    )
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default %(default)s; 0.0.0.0: every interface, for a headset on the LAN)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help="HTTPS port (default %(default)s)")
    serve.add_argument("--token", help="session token to require (default: a new random one per start)")
    serve.add_argument("--allow-origin", action="append", metavar="ORIGIN",
                       help="also accept requests from pages at ORIGIN (scheme://host:port; repeatable). "
                            "By default only the server's own page may use the WebSocket")
    _add_tls_args(serve)
    zmq = serve.add_argument_group("ZMQ endpoints")
    zmq.add_argument("--input-endpoint", help="where operator input is published (default: configs/teleop.yaml "
                                              "control.input_endpoint)")
    zmq.add_argument("--camera-endpoint", default=CAMERA_ENDPOINT, help="camera feed the server binds (default %(default)s)")
    zmq.add_argument("--status-endpoint", default=STATUS_ENDPOINT, help="status feed the server binds (default %(default)s)")
    zmq.add_argument("--event-endpoint", default=EVENT_ENDPOINT, help="episode start/stop/discard events are published here (default %(default)s)")
    serve.add_argument("--camera", action="append", metavar="NAME",
                       help="camera to show in the headset (repeatable; 'all' for every camera); "
                            "default: the head camera(s)")
    serve.add_argument("--no-watchers", action="store_true", help="refuse a second connection instead of letting it watch")
    serve.add_argument("--record", type=Path, metavar="FILE", help="save the operator's messages for `collector vr replay`")
    serve.add_argument("--max-rate", type=float, default=250.0, help="pose frames per second above which frames are dropped (default %(default)s)")
    serve.add_argument("--max-age-ms", type=float, default=100.0,
                       help="pose frames older than this when processed are dropped, not sent late (default %(default)s)")
    serve.add_argument("--test-pattern", action="store_true",
                       help="publish a moving stereo test pattern and demo status (check a headset without a robot)")
    serve.set_defaults(func=run_serve)

    replay = sub.add_parser(
        "replay", help="replay a recorded operator session into a running server",
        description="Send the messages of a session file (from `serve --record`) to a VR server as the "
                    "page would, with the recorded timing.",
    )
    replay.add_argument("file", type=Path, help="session file (JSON lines)")
    replay.add_argument("--url", required=True, help="the page URL printed by `collector vr serve` (with ?token=)")
    replay.add_argument("--cafile", type=Path, help="certificate to verify the server with (default: no TLS check)")
    replay.add_argument("--speed", type=float, default=1.0, help="time scale (2 = twice as fast; default %(default)s)")
    replay.add_argument("--rate", type=float, default=None, help="send at this fixed rate instead (Hz)")
    replay.add_argument("--repeat", type=int, default=1, help="play the file this many times (default %(default)s)")
    replay.set_defaults(func=run_replay)

    script = sub.add_parser(
        "script", help="write a session of the scripted operator's tracked hands doing a sim task",
        description="Plan the task in the scene of --seed as the scripted operator does and write its hands, as "
                    "a headset's hand tracking would send them (head and 25-joint hands, no controllers), to a "
                    "session file. Replay it into `collector vr serve` while `collector teleop --device zmq` runs "
                    "the same robot, task, seed and weight (docs/vr.md).",
    )
    script.add_argument("--robot", default="humanoid_dex", help="robot (default %(default)s)")
    script.add_argument("--task", default="pick_place", help="pick_place or pour (default %(default)s)")
    script.add_argument("--seed", type=int, default=0, help="the scene's seed, as teleop's --seed (default 0)")
    script.add_argument("--lighting", default="bright", help="lighting preset (default %(default)s)")
    script.add_argument("--weight", default="medium", help="weight preset, as teleop's --weight (default %(default)s)")
    script.add_argument("--theme", default="kitchen", help="scene theme (default %(default)s)")
    script.add_argument("--rate", type=float, default=90.0, help="frames per second (default %(default)s)")
    script.add_argument("--out", type=Path, required=True, help="session file to write (JSON lines)")
    script.set_defaults(func=run_script)

    cert = sub.add_parser("cert", help="create or show the self-signed certificate (to install it on a headset)",
                          description="Make sure the self-signed certificate exists and covers --host, and print "
                                      "its path, fingerprint and how to trust it.")
    cert.add_argument("--host", default="127.0.0.1", help="address the headset will use")
    _add_tls_args(cert)
    cert.set_defaults(func=run_cert)
