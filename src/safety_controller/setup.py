from glob import glob

from setuptools import find_packages, setup

# Node parameter YAML lives in the workspace config/ (one file per node) and is
# installed into this package's share directory.
PACKAGE = "safety_controller"


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "bench"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/config", glob("../../config/safety_controller.yaml")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="rlguard developers",
    maintainer_email="dev@rlguard.invalid",
    description="The only cmd_vel publisher: limits, collision guard, latched e-stop, watchdogs.",
    license="Apache-2.0",
    extras_require={"test": ["pytest"]},
    entry_points={
        "console_scripts": [
            "safety_controller = safety_controller.safety_node:main",
        ],
    },
)
