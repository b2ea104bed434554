"""Weakly supervised temporal action localization on feature stores: the methods by name.

Each builder takes ``feature_dim``, ``num_classes`` and its own config section's fields
(``downstream.tal.config.TalConfig.<method>``) as keyword arguments.
"""

from downstream.tal import asl, lacp, mil, rskp

METHODS = {
    "mil": mil.build,
    "asl": asl.build,
    "rskp": rskp.build,
    "lacp": lacp.build,
}
