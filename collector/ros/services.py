"""Calling a std_srvs/Trigger service so that its answer arrives.

A service server that has just come up can receive a request before it has matched the client's
response reader; Fast DDS then waits 100 ms for the match and drops the response ("failed to send
response (timeout): client will not receive response"), and the client waits for an answer that
never comes (ros2/rmw_fastrtps#556, #706). Seen in this project's CI: a recorder node answered
`start_episode` 0.13 s after it came up, the response was dropped, and the episode it had started
kept recording while its caller gave up. So a caller that finds the service only just appeared
gives discovery SETTLE_S more before asking; a service that was already there is called at once.
"""
from __future__ import annotations

import time
from typing import Optional

# Discovery of a new node's endpoints completes in milliseconds on an idle machine and has taken
# more than 100 ms on a loaded one; a second covers that with room.
SETTLE_S = 1.0


class ServiceNotAvailable(Exception):
    pass


class NoAnswer(Exception):
    pass


def call_trigger(client, timeout_s: float, appear_s: Optional[float] = None, settle_s: float = SETTLE_S):
    """The response of one Trigger call on `client` (an rclpy client whose node is spun elsewhere).
    Raises ServiceNotAvailable when the service does not appear within appear_s (default timeout_s),
    NoAnswer when the call is not answered within timeout_s."""
    from std_srvs.srv import Trigger

    if not client.service_is_ready():
        if not client.wait_for_service(timeout_sec=timeout_s if appear_s is None else appear_s):
            raise ServiceNotAvailable()
        time.sleep(settle_s)
    future = client.call_async(Trigger.Request())
    deadline = time.monotonic() + timeout_s
    while not future.done() and time.monotonic() < deadline:
        time.sleep(0.01)
    if not future.done():
        client.remove_pending_request(future)
        raise NoAnswer()
    return future.result()
