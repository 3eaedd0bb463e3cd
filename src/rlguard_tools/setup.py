from setuptools import find_packages, setup

PACKAGE = "rlguard_tools"


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="rlguard developers",
    maintainer_email="dev@rlguard.invalid",
    description="rlguard tools: demo, runners, campaign, bench harness, launch checks.",
    license="Apache-2.0",
    extras_require={"test": ["pytest"]},
)
