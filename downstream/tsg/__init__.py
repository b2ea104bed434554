"""Temporal sentence grounding on feature stores: the methods by name, one per supervision level.

Each method's file declares its ``METHOD``; this dict is the one list of them. Its ``needs``
set the supervision level of its training items (``downstream.data.tsg``): MMN trains on moments
(full), D3G on one glance per sentence, CPL on the sentences alone (weak). The task (items,
predictions, metrics, files) is ``downstream.tsg.task``.
"""

from downstream.tsg import cpl, d3g, mmn

METHODS = {m.name: m for m in (mmn.METHOD, d3g.METHOD, cpl.METHOD)}
