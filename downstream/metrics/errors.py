"""The one error type of the metric loaders: bad user input, message names file and item."""


class MetricInputError(ValueError):
    """A ground-truth or prediction file has a bad value (the message names file and item)."""
