"""Whole groups (sites, cameras, events) to train / val / test: the class-covering assignment
(``group_split``), and the ``python -m mmbehave.split`` command's options and files (``options``, ``maker``)."""
