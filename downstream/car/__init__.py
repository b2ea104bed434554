"""Complex activity recognition on feature stores: the methods by name.

Each method's file declares its ``METHOD``; this dict is the one list of them. The task
(targets, Charades submission files, metrics) is ``downstream.car.task``.
"""

from downstream.car import ghrm, mlp, timeception

METHODS = {m.name: m for m in (mlp.METHOD, timeception.METHOD, ghrm.METHOD)}
