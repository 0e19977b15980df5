"""The built-in benchmarks: rendered scenes (``scenes``), the tidy dataset and its generator (``generator``),
and the field-like one with sites, cameras, events and a long tail (``field``)."""
