from glob import glob

from setuptools import find_packages, setup

# Node parameter YAML lives in the workspace config/ (one file per node) and is
# installed into this package's share directory.
PACKAGE = "hybrid_fallback"


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "bench"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/config", glob("../../config/hybrid_fallback.yaml")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="rlguard developers",
    maintainer_email="dev@rlguard.invalid",
    description="DWA fallback controller and the policy/fallback/teleop/stop arbiter.",
    license="Apache-2.0",
    extras_require={"test": ["pytest"]},
    entry_points={
        "console_scripts": [
            "hybrid_fallback = hybrid_fallback.hybrid_node:main",
        ],
    },
)
