from setuptools import find_packages, setup

PACKAGE = "sim_bringup"


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "bench"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
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
