"""A user's own model component, as a lab would add one: importable, not part of mmbehave."""

from mmbehave.models.mbt import MBTFusion


class LabFusion(MBTFusion):
    """MBT under another name: what matters to the tests is that it is not one of mmbehave's classes."""
