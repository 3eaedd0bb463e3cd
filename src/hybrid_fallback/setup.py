from setuptools import find_packages, setup

PACKAGE = "hybrid_fallback"


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
    description="DWA fallback controller and the policy/fallback/teleop/stop arbiter.",
    license="Apache-2.0",
    extras_require={"test": ["pytest"]},
    entry_points={
        "console_scripts": [
            "hybrid_fallback = hybrid_fallback.hybrid_node:main",
        ],
    },
)
