"""The ROS side every rlguard node shares: running a node, parameters, QoS.

This is the one module of rlguard_common on the node floor (it imports rclpy); the rest
of the package is ROS-free and may be used by cores and training. Only node modules
import it (the floor check in ``make lint`` enforces that).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import rclpy
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile

from rlguard_common.node_shutdown import interrupts_end_quietly
from rlguard_common.parameters import ParameterSpec
from rlguard_common.topics import QosSpec


def qos_profile(spec: QosSpec) -> QoSProfile:
    """The rclpy profile of a QoS spec from `rlguard_common.topics`."""
    return QoSProfile(**spec.rclpy_kwargs())


def parameter_descriptor(spec: ParameterSpec) -> ParameterDescriptor:
    """The descriptor (description, range, read-only) a parameter is declared with."""
    descriptor = ParameterDescriptor(description=spec.description, read_only=spec.read_only)
    if spec.bounds is not None:
        low, high = spec.bounds
        if isinstance(spec.default, int) and not isinstance(spec.default, bool):
            descriptor.integer_range = [
                IntegerRange(from_value=int(low), to_value=int(high), step=1)
            ]
        else:
            descriptor.floating_point_range = [
                FloatingPointRange(from_value=float(low), to_value=float(high), step=0.0)
            ]
    return descriptor


def declare_parameters(node: Node, specs: Mapping[str, ParameterSpec]) -> dict[str, object]:
    """Declare every parameter of a table on ``node``; returns the values it starts with."""
    for name, spec in specs.items():
        node.declare_parameter(name, spec.default, parameter_descriptor(spec))
    return {name: node.get_parameter(name).value for name in specs}


def run_node(
    make_node: Callable[[], Node],
    args: list[str] | None = None,
    make_executor: Callable[[], Executor] = SingleThreadedExecutor,
    before_node: Callable[[], None] | None = None,
) -> None:
    """Init rclpy, spin one node until shutdown, and clean up (the Jazzy-safe ``main``).

    Ctrl-C, even repeated, and an external shutdown end the node quietly with code 0.
    ``before_node`` runs after ``rclpy.init`` and before the node is built.
    """
    with interrupts_end_quietly():
        rclpy.init(args=args)
        node = None
        try:
            if before_node is not None:
                before_node()
            node = make_node()
            executor = make_executor()
            executor.add_node(node)
            executor.spin()
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        except Exception:
            if rclpy.ok():
                raise
            # the signal shut the context down under the executor: that is the shutdown
        finally:
            if node is not None:
                node.destroy_node()
            rclpy.try_shutdown()
