"""One place names the recorded streams and builds their specs (issue 14).

Each builder is checked against the StreamSpec its producer built by hand before the vocabulary
existed (the literal constructions below are copied from those sites: the teleop loop, the ROS 2
recorder node, the simulator's world state and the synthetic datasets), so an episode recorded after
the change declares exactly what one recorded before it did.
"""
import pytest

from collector.recorder import EpisodeReader
from collector.recorder.streams import FieldSpec, StreamSpec, camera_stream
from collector.recorder import vocabulary as v

NAMES = ["shoulder", "elbow", "wrist"]
SIDES = ["left", "right"]
RECEIVE = FieldSpec(())


def _same(built: StreamSpec, before: StreamSpec) -> None:
    assert built.to_dict() == before.to_dict()
    assert built == before  # the dataclass comparison also sees FieldSpec dtypes as declared


# -- names ------------------------------------------------------------------------------------------

def test_stream_names_are_the_ones_episodes_carry():
    assert (v.JOINTS, v.COMMAND, v.INPUT, v.IK_TARGET, v.SAFETY, v.ILLUMINANCE, v.SIM_STATE) == (
        "joints", "command", "input", "ik_target", "safety", "illuminance", "sim_state")


def test_camera_names_round_trip():
    assert v.camera_stream_name("head") == "camera_head"
    assert v.camera_of_stream("camera_head") == "head"
    assert v.camera_of_stream(v.camera_stream_name("left_wrist")) == "left_wrist"
    assert v.camera_receive_stream_name("head") == "camera_head_receive"
    for not_a_camera in ("joints", "camera_", "head"):
        assert v.camera_of_stream(not_a_camera) is None


def test_camera_name_of_a_spec_uses_the_vocabulary():
    assert v.camera_spec("head", 8, 6, 30).camera_name == "head"
    assert camera_stream("front", 8, 6, 30).camera_name == "front"  # no prefix: the name itself


def test_pose_names_round_trip():
    assert v.pose_stream_name("cube") == "pose_objects_cube"
    assert v.object_of_pose_stream("pose_objects_cube") == "cube"
    assert v.object_of_pose_stream("pose_objects_") is None and v.object_of_pose_stream("pose_cube") is None
    assert v.named_pose_stream_name("cube") == "pose_cube"


@pytest.mark.parametrize("topic, stream", [
    ("/objects/cube/pose", "pose_objects_cube"),  # what the simulator's object poses are named after
    ("objects/cube/pose", "pose_objects_cube"),
    ("/tracker/hand-left/pose_filtered", "pose_tracker_hand_left_pose_filtered"),
    ("/pose", "pose_pose"),  # only a /pose suffix is dropped
    ("/", "pose_root"),
])
def test_topic_pose_stream_names(topic, stream):
    assert v.topic_pose_stream_name(topic) == stream


def test_a_simulated_object_and_its_ros_topic_share_one_stream_name():
    assert v.topic_pose_stream_name("/objects/cube/pose") == v.pose_stream_name("cube")


# -- the teleop loop's streams -------------------------------------------------------------------------

def test_joints_and_command_as_the_loop_and_synthetic_datasets_declared_them():
    n = len(NAMES)
    joint_attrs = {"joint_names": list(NAMES)}
    _same(v.joints_spec(NAMES, 100.0),
          StreamSpec("joints", {"position": FieldSpec((n,)), "velocity": FieldSpec((n,)),
                                "effort": FieldSpec((n,))}, 100.0, kind="joints", default_align="linear",
                     attrs=joint_attrs))
    _same(v.command_spec(NAMES, 100.0),
          StreamSpec("command", {"position": FieldSpec((n,))}, 100.0, kind="command", attrs=joint_attrs))


def test_input_as_the_loop_declared_it():
    from collector.teleop.messages import recording_field_shapes

    shapes = recording_field_shapes()
    before = StreamSpec("input", {name: FieldSpec(shape, dtype) for name, (shape, dtype) in shapes.items()},
                        100.0, kind="input", attrs={"operator_frame": "head"})
    _same(v.input_spec(shapes, 100.0, operator_frame="head"), before)
    assert v.input_spec({"vr": ((29,), "float64")}, 90.0).attrs == {}


def test_ik_target_and_safety_as_the_loop_declared_them():
    _same(v.ik_target_spec(SIDES, 100.0),
          StreamSpec("ik_target", {**{side: FieldSpec((7,)) for side in SIDES},
                                   "active": FieldSpec((len(SIDES),), "uint8")},
                     100.0, kind="pose",
                     attrs={"layout": "x y z qw qx qy qz (world frame); inactive arms hold their commanded pose",
                            "sides": list(SIDES)}))
    codes = {"disarmed": 0, "active": 1, "hold": 2, "stopped": 3}
    _same(v.safety_spec(codes, 100.0),
          StreamSpec("safety", {"state": FieldSpec((), "uint8"), "enable": FieldSpec((), "uint8"),
                                "clamped": FieldSpec((), "uint8")}, 100.0, kind="generic",
                     attrs={"states": codes}))


def test_control_records_the_arbiter_choice_as_a_code():
    spec = v.control_spec({"operator": 0, "test": 1}, 100.0)
    assert spec.name == v.CONTROL == "control" and spec.rate_hz == 100.0
    assert spec.fields == {"source": FieldSpec((), "uint8")} and spec.attrs == {"sources": {"operator": 0, "test": 1}}


def test_illuminance_and_cameras_as_the_loop_declared_them():
    _same(v.illuminance_spec(),
          StreamSpec("illuminance", {"value": FieldSpec(())}, 10.0, kind="sensor", attrs={"unit": "lux"}))
    _same(v.camera_spec("head", 640, 480, 30.0), camera_stream("camera_head", 640, 480, 30.0))
    assert v.camera_spec("head", 640, 480, 30.0).codec == "jpeg"


# -- the ROS 2 recorder node's streams -------------------------------------------------------------------

def test_ros_recorder_streams_as_the_node_declared_them():
    n = len(NAMES)
    names = {"joint_names": NAMES, "hardware_joint_names": ["hw_" + j for j in NAMES]}
    hardware = {"hardware_joint_names": names["hardware_joint_names"]}
    for joint_fields in (("position", "velocity", "effort"), ("position",)):
        _same(v.joints_spec(NAMES, 500.0, fields=joint_fields, receive_t=True,
                            attrs={**hardware, "topic": "/joint_states"}),
              StreamSpec("joints", {**{f: FieldSpec((n,)) for f in joint_fields}, "receive_t": RECEIVE},
                         rate_hz=500.0, kind="joints", default_align="linear",
                         attrs={**names, "topic": "/joint_states"}))
    _same(v.command_spec(NAMES, 100.0, receive_t=True, attrs={**hardware, "interface": "trajectory"}),
          StreamSpec("command", {"position": FieldSpec((n,)), "receive_t": RECEIVE}, rate_hz=100.0, kind="command",
                     attrs={**names, "interface": "trajectory"}))
    _same(v.illuminance_spec(10.0, receive_t=True, attrs={"topic": "/illuminance"}),
          StreamSpec("illuminance", {"value": FieldSpec(()), "receive_t": RECEIVE}, rate_hz=10.0,
                     kind="sensor", attrs={"unit": "lux", "topic": "/illuminance"}))
    topic = "/head_camera/image_raw"
    _same(v.camera_spec("head", 320, 240, 15.0, codec="jpeg", jpeg_quality=80, attrs={"topic": topic}),
          camera_stream("camera_head", 320, 240, 15.0, codec="jpeg", jpeg_quality=80, attrs={"topic": topic}))
    _same(v.camera_receive_spec("head", 15.0, topic),
          StreamSpec("camera_head_receive", {"receive_t": RECEIVE}, rate_hz=15.0, kind="sensor",
                     attrs={"topic": topic}))
    _same(v.pose_spec("pose_objects_cube", 30.0, receive_t=True, attrs={"topic": "/objects/cube/pose"}),
          StreamSpec("pose_objects_cube", {"pose": FieldSpec((7,)), "receive_t": RECEIVE}, rate_hz=30.0,
                     kind="pose", attrs={"topic": "/objects/cube/pose", "layout": "x y z qw qx qy qz"}))


# -- the simulator's world streams ---------------------------------------------------------------------

def test_world_streams_as_the_simulator_declared_them(humanoid):
    from collector.sim import world_state

    model = humanoid.load_model()
    objects = ["cube", "tray"]
    built = world_state.world_stream_specs(model, objects, 30.0, robot=humanoid)
    before = [StreamSpec("sim_state", {"state": FieldSpec((world_state.state_size(model),))}, 30.0, kind="sim_state",
                         attrs=world_state.state_attrs(model, humanoid))]
    for name in objects:
        before.append(StreamSpec(f"pose_objects_{name}", {"pose": FieldSpec((7,))}, 30.0, kind="pose",
                                 attrs={"object": name, "layout": "x y z qw qx qy qz", "frame": "world"}))
    assert len(built) == len(before)
    for b, a in zip(built, before):
        _same(b, a)
    assert [v.object_of_pose_stream(s.name) for s in built[1:]] == objects


# -- a recorded episode ----------------------------------------------------------------------------------

def test_a_synthetic_episode_records_the_specs_it_recorded_before(tmp_path):
    from collector.dataset.synthetic import write_synthetic_episode

    path = write_synthetic_episode(tmp_path, "ep", duration_s=0.3, n_joints=4, cameras=("head",),
                                   camera_size=(24, 32))
    names = [f"joint_{i}" for i in range(4)]
    joint_attrs = {"joint_names": names}
    before = {
        "joints": StreamSpec("joints", {"position": FieldSpec((4,)), "velocity": FieldSpec((4,)),
                                        "effort": FieldSpec((4,))}, 100.0, kind="joints", default_align="linear",
                             attrs=joint_attrs),
        "command": StreamSpec("command", {"position": FieldSpec((4,))}, 100.0, kind="command", attrs=joint_attrs),
        "illuminance": StreamSpec("illuminance", {"value": FieldSpec(())}, 10.0, kind="sensor",
                                  attrs={"unit": "lux"}),
        "camera_head": camera_stream("camera_head", 32, 24, 30.0),
    }
    with EpisodeReader(path) as reader:
        assert {name: spec.to_dict() for name, spec in reader.streams.items()} == \
            {name: spec.to_dict() for name, spec in before.items()}
        assert reader.count(v.JOINTS) == reader.count(v.COMMAND) == 30
        assert reader.count(v.ILLUMINANCE) == 3 and reader.count(v.camera_stream_name("head")) == 9
        assert reader.aligned_images("head")[0].shape == (24, 32, 3)
