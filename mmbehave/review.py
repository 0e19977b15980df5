"""Command line: review the least certain clips in the browser; every decision lands in <stem>_reviewed.csv.

    python -m mmbehave.predict checkpoint=<best.pth> input=<clips> output=season.csv review=true
    python -m mmbehave.review queue=season_review.csv checkpoint=<best.pth>        # open the printed address
    python -m mmbehave.split reviewed=season_reviewed.csv labels_dir=<root>/raw/metadata output_dir=round1/
    python -m mmbehave.review queue=season_review.csv camtrap_dp=reviewed_package/   # the decisions as Camtrap DP
    python -m mmbehave.review queue=season_review.csv camtrap_dp_import=agouti_export/  # and a package reviewed elsewhere in

The page plays each clip (a browser-playable copy made on first view for AVI, ASF, MTS ...), its sound and the
model's spectrogram, with the top answers per head; keys accept, relabel, mark unsure or empty. It binds to
127.0.0.1 unless host= says otherwise. Nothing of the clips or the predictions table is changed. Exit status:
0 stopped with Ctrl-C; 2 a bad queue, reviewed table, model or port (before the server starts).
"""

from __future__ import annotations

from omegaconf import DictConfig

from mmbehave.core.cli import command


@command("review")
def main(cfg: DictConfig) -> None:
    from mmbehave.reviewing.serve import export_package, import_package, open_session, serve

    session = open_session(cfg)
    if cfg.get("camtrap_dp_import"):
        import_package(session, str(cfg.camtrap_dp_import))
        return
    if cfg.get("camtrap_dp"):
        export_package(session, str(cfg.camtrap_dp), cfg.get("package"))
        return
    serve(session)


if __name__ == "__main__":
    main()
