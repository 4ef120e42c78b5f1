"""Install the collector package: `pip install -e ".[ros,test]"` (see README)."""
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent


def tree(folder):
    """data_files entries that install a top-level folder under share/collector/."""
    entries = {}
    for path in sorted((ROOT / folder).rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            rel = path.relative_to(ROOT)
            entries.setdefault(str(Path("share/collector") / rel.parent), []).append(str(rel))
    return sorted(entries.items())


ROS = [
    "ros-kilted-rclpy>=9.1",
    "ros-kilted-rmw-fastrtps-cpp>=9.3",
    "ros-kilted-sensor-msgs",
    "ros-kilted-std-msgs",
    "ros-kilted-std-srvs",
    "ros-kilted-geometry-msgs",
    "ros-kilted-trajectory-msgs",
]

DATASET = [
    "dask[distributed]>=2024.1",
    "pyarrow>=15",
    "av>=12",
    "mcap>=1.1",
    "mcap-ros2-support>=0.5",
    "matplotlib>=3.8",
    "pandas>=2.2",
]

# `collector view` and --display: StateChange, TransformAxes3D and the rerun.chunk reader (tests) are 0.41's.
VIEW = ["rerun-sdk>=0.41"]

# Fleet: shared storage through fsspec (file://, s3:// with s3fs; gs:// needs gcsfs, installed by hand).
# The fleet's catalogue on a PostgreSQL server (`--catalog postgresql://...`): psycopg 3.
FLEET = ["fsspec>=2023.1", "s3fs>=2023.1", "psycopg[binary]>=3.1"]

TEST = [
    "pytest>=8.0",
    "moto[server]>=5.0",  # the S3 wire protocol for tests/test_publish.py (a real moto_server process)
    "pytest-timeout>=2.3",
    "selenium>=4.20",
    "hypothesis>=6.100",
    "pandas>=2.2",
    "polars>=1.0",
    "scipy>=1.10",
]

setup(
    name="collector",
    version="0.1.0",
    description="Humanoid teleoperation data collection for imitation learning",
    long_description=(ROOT / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["collector", "collector.*"]),
    include_package_data=True,
    package_data={"collector": ["**/*.html", "**/*.js", "**/*.css", "**/*.xml", "**/*.yaml"]},
    data_files=tree("robots") + tree("configs") + tree("launch"),
    install_requires=[
        "numpy>=1.26",
        # 4.0.0 factored sparse constraint Jacobians wrongly in its Newton solver (fixed in 4.0.1, MuJoCo #3767):
        # wrong accelerations, so different contact outcomes than any other release.
        "mujoco>=3.2,!=4.0.0",
        "mink>=1.0",
        "daqp>=0.6",
        "h5py>=3.10",
        "opencv-python-headless>=4.9",
        "pyzmq>=25.0",
        "msgpack>=1.0",
        "PyYAML>=6.0",
        "tqdm>=4.66",
        "aiohttp>=3.9",
        "cryptography>=42",
        "sqlalchemy>=2.0",  # the catalogue (collector/session/catalog_engine.py): SQLite and PostgreSQL
    ],
    # train: torch for DataLoader use; scripts/install_test_deps.sh installs the CPU build the tests use.
    extras_require={"ros": ROS, "dataset": DATASET, "train": ["torch>=2.1"], "view": VIEW,
                    "fleet": FLEET, "test": TEST + DATASET + VIEW + FLEET},
    entry_points={"console_scripts": ["collector=collector.cli:main"]},
)
