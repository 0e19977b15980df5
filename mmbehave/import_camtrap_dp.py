"""Command line: a Camtrap DP 1.0 package (TDWG; GBIF, Agouti, Wildlife Insights) -> an mmbehave dataset.

    python -m mmbehave.import_camtrap_dp package=<dir | datapackage.json | .zip> media_dir=<media files> output_dir=<root>
    python -m mmbehave.preprocess data.root=<root>        # then as any dataset

Observations give the labels (scientificName -> species, behavior -> behavior); video and audio files become
clips, and each event of still images one silent MP4. Splits keep whole deployments together. A table of what
was used and skipped, and why, is printed and written to ``<root>/import_report.csv`` (see docs/camtrap_dp.md).
Exit status: 0 imported; 2 bad package or config, or no clip could be made.
"""

from __future__ import annotations

from omegaconf import DictConfig

from mmbehave.core.cli import command


@command("import_camtrap_dp", renamed={"out": "output_dir", "split.by": "split.group_by"})  # before 2026-12
def main(cfg: DictConfig) -> None:
    from mmbehave.data.camtrap_dp.importer import (
        check_not_empty,
        import_package,
        summary_lines,
    )

    result = import_package(cfg)
    print("\n".join(summary_lines(result)))
    check_not_empty(result)


if __name__ == "__main__":
    main()
