"""Camtrap DP 1.0 (TDWG) in and out: reading a package (``package``), which clips and labels it makes
(``clips``, ``image_bursts``), importing it as a dataset (``importer``), and predictions as a package (``exporter``)."""
