"""Default addresses of the VR bridge (kept import-free so the CLI can show them cheaply).

The server binds all of them; the teleop loop, session and publishers connect. Operator input
goes to the teleop config's control.input_endpoint (configs/teleop.yaml), not listed here.
"""
DEFAULT_PORT = 8443
CAMERA_ENDPOINT = "tcp://127.0.0.1:5571"
STATUS_ENDPOINT = "tcp://127.0.0.1:5572"
EVENT_ENDPOINT = "tcp://127.0.0.1:5573"
