"""Command line: one label table -> train / val / test tables that never share a site (or camera, event).

    python -m mmbehave.split labels=<table.csv> output_dir=<dir> group_by=site 'fractions={train:0.7,val:0.15,test:0.15}' seed=0
    cp <dir>/{train,val,test}.csv <root>/raw/metadata/      # then preprocess and train as usual
    python -m mmbehave.split labels=<table.csv> output_dir=<dir> group_by=site folds=5   # or folds=loo: <dir>/fold_<i>/
    python -m mmbehave.split reviewed=<stem>_reviewed.csv labels_dir=<root>/raw/metadata output_dir=<round dir>
        # a review's decisions added to the existing tables: every clip already there stays in its split
        # (reviewing/corrections.py); train on them with data.labels_dir=<round dir> training.init_from=<best.pth>

Whole groups go to one split each, so the test split measures places the model never saw; among such
splits, the one that puts every class of every head in every split (where the groups allow it) and comes
closest to the fractions wins. Only the table is read, no media. What cannot be in every split is printed
and written to <dir>/unsplittable_classes.csv with the reason. Exit status: 0 written; 2 bad table or
config, or too few groups for the splits (nothing is written then).
"""

from __future__ import annotations

from omegaconf import DictConfig

from mmbehave.core.cli import command


@command("split", renamed={"out": "output_dir"})  # the spelling before 2026-12
def main(cfg: DictConfig) -> None:
    from mmbehave.data.splits.maker import split_table, summary_lines, write_outputs
    from mmbehave.data.splits.options import SplitOptions

    if cfg.get("reviewed"):
        from mmbehave.reviewing.corrections import (
            CorrectionOptions,
            add_reviewed,
            correction_lines,
            write_corrections,
        )

        result = add_reviewed(CorrectionOptions.from_config(cfg))
        written = write_corrections(result)
        print("\n".join(correction_lines(result)))
        print(f"\nWrote {', '.join(path.name for path in written)} in {result.options.output_dir}")
        return
    options = SplitOptions.from_config(cfg)
    if options.folds is not None:
        from mmbehave.data.splits.folds import (
            folds_summary_lines,
            make_folds,
            write_folds,
        )

        folds = make_folds(options)
        write_folds(folds)
        print("\n".join(folds_summary_lines(folds)))
        print(f"\nWrote folds.csv and {len(folds.folds)} fold folders in {options.output_dir}")
        return
    result = split_table(options)
    written = write_outputs(result)
    print("\n".join(summary_lines(result)))
    print(f"\nWrote {', '.join(path.name for path in written)} in {result.options.output_dir}")


if __name__ == "__main__":
    main()
