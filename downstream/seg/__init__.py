"""Temporal action segmentation on feature stores: the methods by name.

Each method's file declares its ``METHOD``; this dict is the one list of them. The task
(targets, label files, metrics) is ``downstream.seg.task``.
"""

from downstream.seg import linear, ltcontext, mstcn, poc

METHODS = {m.name: m for m in (mstcn.METHOD, linear.METHOD, ltcontext.METHOD, poc.METHOD)}
