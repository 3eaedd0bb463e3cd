from glob import glob

from setuptools import find_packages, setup

# Node parameter YAML lives in the workspace config/ (one file per node) and is
# installed into this package's share directory.
PACKAGE = "sim_bringup"


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "bench"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/config", glob("../../config/mujoco_sim.yaml")),
        (f"share/{PACKAGE}/config/robots", glob("../../config/robots/*.yaml")),
        (f"share/{PACKAGE}/worlds", glob("worlds/*.yaml")),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/gazebo", glob("gazebo/*.yaml")),
        (f"share/{PACKAGE}/gazebo/worlds", glob("gazebo/worlds/*.sdf")),
        (f"share/{PACKAGE}/gazebo/models/rlguard_robot", glob("gazebo/models/rlguard_robot/*")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="rlguard developers",
    maintainer_email="dev@rlguard.invalid",
    description="Embedded MuJoCo simulator, world/robot descriptions and Gazebo Harmonic bringup.",
    license="Apache-2.0",
    extras_require={"test": ["pytest"]},
    entry_points={
        "console_scripts": [
            "mujoco_sim = sim_bringup.sim_node:main",
        ],
    },
)
