"""collector.ros.services.call_trigger against a real Trigger server in another process, over real DDS:
a service that only just appeared gets discovery time before the request (the CI failure of 2250055:
a recorder answered start_episode 0.13 s after it came up and Fast DDS dropped the response)."""
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from collector.ros.environment import domain_id_for_pid, ros_environment

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
ROOT = Path(__file__).resolve().parents[1]
DOMAIN = domain_id_for_pid(os.getpid() + 37)  # not test_ros_nodes' domain
SERVER = textwrap.dedent("""
    import sys, time
    from collector.ros.runtime import RosRuntime
    from std_srvs.srv import Trigger
    time.sleep(float(sys.argv[1]))
    runtime = RosRuntime("trigger_server", domain_id=int(sys.argv[2])).start()
    def answer(request, response):
        response.success, response.message = True, f"{time.time():.6f}"
        return response
    runtime.node.create_service(Trigger, "/collector_test/trigger", answer)
    print(f"up {time.time():.6f}", flush=True)
    time.sleep(60)
""")


@pytest.fixture
def client():
    from std_srvs.srv import Trigger
    from collector.ros.runtime import RosRuntime

    runtime = RosRuntime("trigger_client", domain_id=DOMAIN, handle_signals=False).start()
    yield runtime.node.create_client(Trigger, "/collector_test/trigger")
    runtime.close()


def server(delay_s: float):
    env = ros_environment(domain_id=DOMAIN)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return subprocess.Popen([sys.executable, "-c", SERVER, str(delay_s), str(DOMAIN)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_service_that_just_appeared_is_asked_after_discovery_settles_and_answers(client):
    from collector.ros.services import SETTLE_S, call_trigger

    process = server(delay_s=1.0)  # not there yet when the call starts
    try:
        response = call_trigger(client, timeout_s=60)
        assert response.success
        up = float(process.stdout.readline().split()[1])
        assert float(response.message) - up >= SETTLE_S  # asked a settle time after the server came up
        started = time.monotonic()
        again = call_trigger(client, timeout_s=60)  # already there: asked at once
        assert again.success and time.monotonic() - started < SETTLE_S
    finally:
        process.kill()
        process.communicate()


def test_a_service_that_never_appears_is_said_in_time(client):
    from collector.ros.services import ServiceNotAvailable, call_trigger

    started = time.monotonic()
    with pytest.raises(ServiceNotAvailable):
        call_trigger(client, timeout_s=1.5)
    assert time.monotonic() - started < 10
    started = time.monotonic()  # how long to wait for it to appear can be shorter than for the answer
    with pytest.raises(ServiceNotAvailable):
        call_trigger(client, timeout_s=60, appear_s=1.5)
    assert time.monotonic() - started < 10
