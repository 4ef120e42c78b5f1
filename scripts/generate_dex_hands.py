"""Write the dexterous hands of robots/humanoid_dex: hand_left.xml, hand_right.xml and hand_drives.xml.

    python scripts/generate_dex_hands.py robots/humanoid_dex

The right hand is generated as the exact mirror image of the left (tests/test_robot_dex.py checks the
fingertips mirror within 1 mm), which is why the files are generated rather than edited by hand.
"""
import math, sys

OUT = sys.argv[1]
S = 1  # side sign: +1 left (palm faces -y), -1 right (palm faces +y)

def f(*v):
    return " ".join(("%.4f" % x).rstrip("0").rstrip(".").replace("-0", "-0") if abs(x) > 1e-12 else "0" for x in v)

FINGERS = [  # name, x, z of the knuckle, proximal, middle, distal length (to the cap), radius, masses
    ("index", 0.030, -0.108, 0.040, 0.024, 0.011, 0.0090, (0.016, 0.009, 0.006)),
    ("middle", 0.010, -0.111, 0.045, 0.027, 0.012, 0.0090, (0.018, 0.010, 0.006)),
    ("ring", -0.010, -0.109, 0.042, 0.026, 0.011, 0.0085, (0.016, 0.009, 0.005)),
    ("little", -0.030, -0.102, 0.033, 0.019, 0.009, 0.0075, (0.011, 0.006, 0.004)),
]
DIP_RATIO = 0.7
THUMB_ALPHA = 0.8  # rad: the extended thumb points this far from the fingers' direction, in the palm plane
THUMB_BASE = (0.034, -0.012, -0.028)
THUMB = (0.044, 0.034, 0.018, 0.0095)  # metacarpal, proximal, distal length, radius
THUMB_IP_RATIO = 1.2


def hand(side):
    s = 1 if side == "left" else -1
    p = side + "_"
    # Pseudo-vector mirror: a joint axis (x, y, z) of the left hand is (-x, y, -z) on the right, so the same
    # joint value moves both hands as mirror images (+ = flex on both).
    def axis(x, y, z):
        return f(x, y, z) if s == 1 else f(-x, y, -z)
    def pos(x, y, z):
        return f(x, s * y, z)
    def quat(w, x, y, z):
        return f(w, x, y, z) if s == 1 else f(w, -x, y, -z)

    L = []
    a = L.append
    a("<mujoco>")
    a(f"  <!-- {side.capitalize()} hand: palm faces {'-y' if s == 1 else '+y'} (towards the body), fingers along -z, thumb towards +x."
      " See robots/humanoid_dex/humanoid_dex.xml for the layout.")
    a("       The right hand is the mirror image of the left: y of every position negated, joint axes (x, y, z) ->"
      " (-x, y, -z),\n       camera axes flipped to stay right-handed; tests/test_robot_dex.py checks the two"
      " hands move as mirror images. -->")
    a(f'  <geom name="{p}palm" class="dex_palm" size="0.042 0.014 0.048" pos="{pos(0, 0, -0.063)}" mass="0.33"/>')
    a(f'  <geom name="{p}palm_back" class="visual" type="box" size="0.036 0.003 0.04" pos="{pos(0, 0.0145, -0.065)}" material="robot_accent"/>')
    a(f'  <geom name="{p}wrist_cuff" class="visual" type="cylinder" size="0.03 0.008" pos="0 0 -0.012" material="robot_joint"/>')
    a(f'  <geom name="{p}wrist_cam_housing" class="visual" type="box" size="0.012 0.008 0.01" pos="{pos(-0.005, -0.024, -0.014)}" material="robot_joint"/>')
    # Camera under the wrist on the palm side, looking along the palm at the fingers and what they hold,
    # tilted 25 degrees away from the palm so the palm does not fill the view.
    c, sn = math.cos(math.radians(25)), math.sin(math.radians(25))
    xy = f(-1, 0, 0, 0, -c, sn) if s == 1 else f(1, 0, 0, 0, c, sn)  # image up: away from the palm
    a(f'  <camera name="{p}wrist_cam" pos="{pos(-0.005, -0.033, -0.016)}" xyaxes="{xy}" fovy="80"/>')
    a(f'  <!-- Grasp centre in front of the palm: +z = approach (palm -> fingertips), +y = closing axis. -->')
    a(f'  <site name="{p}ee" pos="{pos(0.005, -0.040, -0.085)}" quat="0 1 0 0"/>')
    a(f'  <site name="{p}palm_centre" pos="{pos(0, -0.0145, -0.07)}"/>')
    a(f'  <site name="{p}palm_touch" class="dex_touch" type="box" size="0.043 0.005 0.049" pos="{pos(0, -0.014, -0.063)}"/>')
    for name, x, z, lp, lm, ld, r, (mp, mm, md) in FINGERS:
        n = p + name
        a(f'  <body name="{n}_proximal" pos="{pos(x, -0.002, z)}" childclass="dex" gravcomp="1">')
        a(f'    <joint name="{n}_flexion" class="dex_flexion" axis="{axis(-1, 0, 0)}"/>')
        a(f'    <geom name="{n}_proximal_geom" fromto="0 0 0 0 0 {-lp}" size="{r}" mass="{mp}"/>')
        a(f'    <body name="{n}_middle" pos="0 0 {-lp}" gravcomp="1">')
        a(f'      <joint name="{n}_pip" class="dex_follower" axis="{axis(-1, 0, 0)}" range="0 1.6"/>')
        a(f'      <geom name="{n}_middle_geom" fromto="0 0 0 0 0 {-lm}" size="{r * 0.95:.4f}" mass="{mm}"/>')
        a(f'      <body name="{n}_distal" pos="0 0 {-lm}" gravcomp="1">')
        a(f'        <joint name="{n}_dip" class="dex_follower" axis="{axis(-1, 0, 0)}" range="0 1.15"/>')
        rd = r * 0.9
        a(f'        <geom name="{n}_distal_geom" fromto="0 0 0 0 0 {-ld}" size="{rd:.4f}" mass="{md}"/>')
        a(f'        <site name="{n}_tip" pos="{pos(0, -0.4 * rd, -ld - 0.3 * rd)}"/>')
        a(f'        <site name="{n}_touch" class="dex_touch" size="{rd + 0.004:.4f} {rd + 0.004:.4f} {ld / 2 + rd + 0.003:.4f}" pos="0 0 {-ld / 2:.4f}"/>')
        a("      </body>")
        a("    </body>")
        a("  </body>")
    # Thumb: the base rotates about the palm's long axis (opposition); the chain then flexes.
    lmc, lpx, ldi, rt = THUMB
    d = (math.sin(THUMB_ALPHA), 0.0, -math.cos(THUMB_ALPHA))
    a(f'  <body name="{p}thumb_metacarpal" pos="{pos(*THUMB_BASE)}" childclass="dex" gravcomp="1">')
    a(f'    <joint name="{p}thumb_rotation" class="dex_thumb" axis="{axis(0, 0, -1)}" range="0 1.6"/>')
    a(f'    <geom name="{p}thumb_metacarpal_geom" fromto="0 0 0 {pos(*(lmc * v for v in d))}" size="0.012" mass="0.03"/>')
    # The phalanges' frame: -z along the thumb, flexion about +y (towards the fingers when opposed).
    qw, qy = math.cos(-THUMB_ALPHA / 2), math.sin(-THUMB_ALPHA / 2)
    a(f'    <body name="{p}thumb_proximal" pos="{pos(*(lmc * v for v in d))}" quat="{quat(qw, 0, qy, 0)}" gravcomp="1">')
    a(f'      <joint name="{p}thumb_flexion" class="dex_thumb" axis="{axis(0, 1, 0)}" range="0 1.0"/>')
    a(f'      <geom name="{p}thumb_proximal_geom" fromto="0 0 0 0 0 {-lpx}" size="{rt}" mass="0.014"/>')
    a(f'      <body name="{p}thumb_distal" pos="0 0 {-lpx}" gravcomp="1">')
    a(f'        <joint name="{p}thumb_ip" class="dex_follower" axis="{axis(0, 1, 0)}" range="0 1.25"/>')
    a(f'        <geom name="{p}thumb_distal_geom" fromto="0 0 0 0 0 {-ldi}" size="{rt * 0.95:.4f}" mass="0.008"/>')
    rd = rt * 0.95
    a(f'        <site name="{p}thumb_tip" pos="{pos(-0.4 * rd, 0, -ldi - 0.3 * rd)}"/>')
    a(f'        <site name="{p}thumb_touch" class="dex_touch" size="{rd + 0.004:.4f} {rd + 0.004:.4f} {ldi / 2 + rd + 0.003:.4f}" pos="0 0 {-ldi / 2:.4f}"/>')
    a("      </body>")
    a("    </body>")
    a("  </body>")
    a("</mujoco>")
    return "\n".join(L) + "\n"


def drives():
    L = ["<mujoco>", "  <equality>",
         "    <!-- Distal joints follow their finger's flexion joint (q_follower = ratio * q_flexion), as the linkages",
         "         of Inspire-style hands do; robot.yaml names the same couplings under hands.<side>.coupling. -->"]
    for side in ("left", "right"):
        p = side + "_"
        for name, *_ in FINGERS:
            n = p + name
            L.append(f'    <joint name="{n}_pip_coupling" joint1="{n}_pip" joint2="{n}_flexion" polycoef="0 1 0 0 0" solref="0.005 1"/>')
            L.append(f'    <joint name="{n}_dip_coupling" joint1="{n}_dip" joint2="{n}_flexion" polycoef="0 {DIP_RATIO} 0 0 0" solref="0.005 1"/>')
        L.append(f'    <joint name="{p}thumb_ip_coupling" joint1="{p}thumb_ip" joint2="{p}thumb_flexion" polycoef="0 {THUMB_IP_RATIO} 0 0 0" solref="0.005 1"/>')
    L += ["  </equality>", "", "  <actuator>"]
    for side in ("left", "right"):
        p = side + "_"
        L.append(f'    <position name="{p}thumb_rotation" class="dex_thumb" joint="{p}thumb_rotation"/>')
        L.append(f'    <position name="{p}thumb_flexion" class="dex_thumb" joint="{p}thumb_flexion"/>')
        for name, *_ in FINGERS:
            L.append(f'    <position name="{p}{name}_flexion" class="dex_flexion" joint="{p}{name}_flexion"/>')
    L += ["  </actuator>", "", "  <sensor>"]
    for side in ("left", "right"):
        p = side + "_"
        for name in ("thumb", "index", "middle", "ring", "little", "palm"):
            L.append(f'    <touch name="{p}{name}_touch" site="{p}{name}_touch"/>')
    L += ["  </sensor>", "</mujoco>"]
    return "\n".join(L) + "\n"


open(f"{OUT}/hand_left.xml", "w").write(hand("left"))
open(f"{OUT}/hand_right.xml", "w").write(hand("right"))
open(f"{OUT}/hand_drives.xml", "w").write(drives())
