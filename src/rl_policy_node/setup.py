from glob import glob

from setuptools import find_packages, setup

# Node parameter YAML lives in the workspace config/ (one file per node) and is
# installed into this package's share directory.
PACKAGE = "rl_policy_node"


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "bench"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/config", glob("../../config/rl_policy_node.yaml")),
        (
            f"share/{PACKAGE}/models",
            glob("../../models/*.pt") + glob("../../models/*.onnx") + glob("../../models/*.md"),
        ),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="rlguard developers",
    maintainer_email="dev@rlguard.invalid",
    description="Policy inference (ONNX Runtime or TorchScript) and its core.",
    license="Apache-2.0",
    extras_require={"test": ["pytest"]},
    entry_points={
        "console_scripts": [
            "rl_policy_node = rl_policy_node.policy_node:main",
        ],
    },
)
