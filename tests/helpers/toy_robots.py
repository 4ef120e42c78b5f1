"""Two small robots written as MJCF + robot YAML, to prove the stack works for any robot a YAML describes:
a two-arm robot (6-DoF arms, slide grippers, pan/tilt head) and a 2-joint arm with a gripper and a camera.
"""
from pathlib import Path

ARM_JOINTS = ("sh_pitch", "sh_roll", "sh_yaw", "elbow", "wr_pitch", "wr_roll")


def toy_arm(side: str, y: float, roll_range: str) -> str:
    """One 6-DoF arm with a slide gripper; the two arms differ in side prefix, shoulder y and roll range."""
    return f"""
      <body name="{side}_shoulder" pos="0 {y} 0.35" gravcomp="1">
        <joint name="{side}_sh_pitch" axis="0 1 0" range="-2.5 1.0"/>
        <geom name="{side}_shoulder_geom" type="sphere" size="0.035" mass="0.3"/>
        <body name="{side}_sh2" gravcomp="1">
          <joint name="{side}_sh_roll" axis="1 0 0" range="{roll_range}"/>
          <inertial pos="0 0 0" mass="0.2" diaginertia="1e-4 1e-4 1e-4"/>
          <body name="{side}_upper" gravcomp="1">
            <joint name="{side}_sh_yaw" axis="0 0 1" range="-1.5 1.5"/>
            <geom name="{side}_upper_geom" type="capsule" fromto="0 0 0 0 0 -0.22" size="0.03" mass="1"/>
            <body name="{side}_fore" pos="0 0 -0.24" gravcomp="1">
              <joint name="{side}_elbow" axis="0 -1 0" range="0 2.4"/>
              <geom name="{side}_fore_geom" type="capsule" fromto="0 0 0 0 0 -0.2" size="0.025" mass="0.6"/>
              <body name="{side}_wrist" pos="0 0 -0.22" gravcomp="1">
                <joint name="{side}_wr_pitch" axis="0 1 0" range="-1.6 1.6"/>
                <inertial pos="0 0 0" mass="0.1" diaginertia="1e-4 1e-4 1e-4"/>
                <body name="{side}_hand" gravcomp="1">
                  <joint name="{side}_wr_roll" axis="0 0 1" range="-2 2"/>
                  <geom name="{side}_palm" type="box" size="0.02 0.04 0.02" pos="0 0 -0.03" mass="0.2"/>
                  <site name="{side}_tool" pos="0 0 -0.08" quat="0 1 0 0"/>
                  <body name="{side}_finger" pos="0 0 -0.06" gravcomp="1">
                    <joint name="{side}_grip" type="slide" axis="0 1 0" range="0 0.04"/>
                    <geom name="{side}_finger_geom" type="box" size="0.005 0.005 0.02" pos="0 0 -0.02" mass="0.02"/>
                  </body>
                </body>
              </body>
            </body>
          </body>
        </body>
      </body>"""


ARM_ACTUATORS = "".join(f"""
    <position name="a_{side}_{joint}" joint="{side}_{joint}"/>""" for side in "lr" for joint in ARM_JOINTS)

TOY_MJCF = f"""
<mujoco model="toy_two_arm">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="0.002"/>
  <default>
    <geom contype="2" conaffinity="1" rgba="0.7 0.7 0.8 1"/>
    <joint damping="1" armature="0.02"/>
    <position kp="200" kv="10" inheritrange="1"/>
  </default>
  <worldbody>
    <light pos="0 0 3"/>
    <body name="base" pos="0 0 0.8">
      <geom name="torso" type="box" size="0.06 0.12 0.2" pos="0 0 0.2" mass="5"/>
      <body name="neck" pos="0 0 0.42">
        <joint name="pan" axis="0 0 1" range="-1 1"/>
        <geom name="neck_geom" type="cylinder" size="0.02 0.02" mass="0.1"/>
        <body name="skull" pos="0 0 0.04">
          <joint name="tilt" axis="0 1 0" range="-0.5 0.8"/>
          <geom name="skull_geom" type="sphere" size="0.06" mass="0.5"/>
          <camera name="eyes" pos="0.06 0 0" xyaxes="0 -1 0 0 0 1"/>
        </body>
      </body>{toy_arm("l", 0.18, "-0.3 1.5")}{toy_arm("r", -0.18, "-1.5 0.3")}
    </body>
  </worldbody>
  <actuator>
    <position name="a_pan" joint="pan"/>
    <position name="a_tilt" joint="tilt"/>{ARM_ACTUATORS}
    <position name="l_gripper" joint="l_grip" kp="300"/>
    <position name="r_gripper" joint="r_grip" kp="300"/>
  </actuator>
</mujoco>
"""

TOY_YAML = """
name: toy_two_arm
mjcf: toy.xml
fixed_base: true
groups:
  head: [pan, tilt]
  left_arm: [l_sh_pitch, l_sh_roll, l_sh_yaw, l_elbow, l_wr_pitch, l_wr_roll]
  right_arm: [r_sh_pitch, r_sh_roll, r_sh_yaw, r_elbow, r_wr_pitch, r_wr_roll]
  left_hand: [l_grip]
  right_hand: [r_grip]
end_effectors: {left: l_tool, right: r_tool}
grippers:
  left: {actuator: l_gripper, open: 0.04, closed: 0.0, joints: [l_grip]}
  right: {actuator: r_gripper, open: 0.04, closed: 0.0, joints: [r_grip]}
head: {pan: pan, tilt: tilt}
cameras:
  eyes: {mjcf_camera: eyes, width: 64, height: 48, fps: 10}
home: {l_sh_pitch: -0.5, l_elbow: 1.6, l_wr_pitch: 0.6, r_sh_pitch: -0.5, r_elbow: 1.6, r_wr_pitch: 0.6,
       l_grip: 0.04, r_grip: 0.04, tilt: 0.3}
ik_collision_pairs:
  - [[l_palm, l_fore_geom, l_finger_geom], [torso, skull_geom]]
  - [[r_palm, r_fore_geom, r_finger_geom], [torso, skull_geom]]
  - [[l_palm, l_fore_geom], [r_palm, r_fore_geom]]
"""


def write_toy_robot(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "toy.xml").write_text(TOY_MJCF)
    path = directory / "robot.yaml"
    path.write_text(TOY_YAML)
    return path


TOY_ARM_XML = """
<mujoco model="toy_arm">
  <compiler angle="radian" autolimits="true"/>
  <worldbody>
    <body name="base" pos="0 0 0.8">
      <geom name="base_geom" type="cylinder" size="0.05 0.05"/>
      <body name="link1" pos="0 0 0.1" gravcomp="1">
        <joint name="j1" axis="0 0 1" range="-2 2"/>
        <geom name="link1_geom" type="capsule" fromto="0 0 0 0.25 0 0" size="0.03" mass="1"/>
        <body name="link2" pos="0.25 0 0" gravcomp="1">
          <joint name="j2" axis="0 1 0" range="-2 2"/>
          <geom name="link2_geom" type="capsule" fromto="0 0 0 0.2 0 0" size="0.025" mass="0.5"/>
          <site name="tool" pos="0.2 0 0"/>
          <camera name="tool_cam" pos="0.2 0 0.05" xyaxes="0 -1 0 0 0 1"/>
          <body name="finger" pos="0.2 0 0" gravcomp="1">
            <joint name="finger_slide" type="slide" axis="0 1 0" range="0 0.04"/>
            <geom name="finger_geom" type="box" size="0.01 0.005 0.02" mass="0.05"/>
          </body>
        </body>
      </body>
    </body>
  </worldbody>
  <actuator>
    <position name="j1_servo" joint="j1" kp="100" kv="5" inheritrange="1"/>
    <position name="j2_servo" joint="j2" kp="100" kv="5" inheritrange="1"/>
    <position name="grip" joint="finger_slide" kp="200" kv="5" inheritrange="1"/>
  </actuator>
</mujoco>
"""


def toy_yaml(**overrides):
    data = {
        "name": "toy_arm",
        "mjcf": "toy_arm.xml",
        "fixed_base": True,
        "groups": {"right_arm": ["j1", "j2"], "right_hand": ["finger_slide"]},
        "end_effectors": {"right": "tool"},
        "grippers": {"right": {"actuator": "grip", "open": 0.04, "closed": 0.0, "joints": ["finger_slide"]}},
        "cameras": {"tool": {"mjcf_camera": "tool_cam", "width": 160, "height": 120, "fps": 15}},
        "home": {"j2": 0.2, "finger_slide": 0.04},
        "ik_collision_pairs": [[["link2_geom"], ["base_geom"]]],
        "scene": {"table_height": 0.75, "table_front_x": 0.15, "task_center": [0.35, 0.0],
                  "task_half_extent": [0.05, 0.15]},
    }
    data.update(overrides)
    return data
