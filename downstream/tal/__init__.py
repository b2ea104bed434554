"""Weakly supervised temporal action localization on feature stores: the methods by name.

Each method's file declares its ``METHOD`` (config dataclass, builder, needs); this dict is the
one list of them. The task itself (targets, predictions, metric) is ``downstream.tal.task``.
"""

from downstream.tal import asl, lacp, mil, rskp

METHODS = {m.name: m for m in (mil.METHOD, asl.METHOD, rskp.METHOD, lacp.METHOD)}
