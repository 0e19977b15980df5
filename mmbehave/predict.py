"""Predict species and behaviour for new, unlabelled clips: one CSV row per clip.

    python -m mmbehave.predict checkpoint=<best.pth> input=field_clips/ output=predictions.csv
    python -m mmbehave.predict run_id=<MLflow run id> input=clip.mp4 output=clip.csv top_k=5
    python -m mmbehave.predict checkpoint=<best.pth> input=field_clips/ output=p.csv columns=wide threshold=0.6 \
        segment_stride=1 aggregate=mean segments=true event_by=60
    python -m mmbehave.predict checkpoint=<best.pth> input=archive/ output=season.csv review=true   # again: resumes
    python -m mmbehave.predict checkpoint=<best.pth> input=archive/ estimate=true                    # how long?
    python -m mmbehave.predict checkpoint=<best.pth> input=archive/ output=part_3.csv shard=3/16      # machine 3 of 16
    python -m mmbehave.predict checkpoint=<best.pth> 'merge=[part_0.csv,part_1.csv]' output=season.csv

    clip file(s) ─► num_workers processes read them (one pass each, only the frames the model needs;
      │             ``data/clip_reader.py``), preprocessed as in training with the checkpoint's settings,
      │             or, with segment_stride=, each window of the model's length (``predicting/segments.py``)
      ─► frames / 255, log-mel standardised with the training clips' mean and std   (as mmbehave.data.dataset)
      ─► model ─► softmax per head ─► segments combined per clip (aggregate=mean | max)
      ─► path, clip_id, has_video, has_audio, species, species_prob, behavior, behavior_prob,
         species_top<k>, behavior_top<k> ("name:prob|...", best first), warning (why a clip gave the model
         nothing to go on; usually empty), [segments], [p(<head>=<class>) per class: columns=wide],
         model_run_id, model_sha256 (which model: its MLflow run, the first 12 hex of the file's SHA-256)

A label is ``uncertain`` where its head's top probability is below threshold= (or the checkpoint's stored
threshold); its probability and top-k still show the guess. Beside output=<stem>.csv: <stem>_segments.csv
(segments=true: one row per segment, start_s / end_s) and <stem>_events.csv (event_by=: one row per event,
clips grouped by a column of event_table= or by a time gap; see ``mmbehave/predicting/events.py``).

With ``format=camtrap_dp`` the output is a Camtrap DP 1.0 package instead (a folder: observations.csv with one
row per clip, media.csv, deployments.csv, datapackage.json; see ``mmbehave/data/camtrap_dp/exporter.py``); an
``uncertain`` species is written as observationType ``unknown``.

Every batch's results reach <stem>_probabilities.jsonl (and rows the output table) before the next batch: a crash,
Ctrl-C, SIGTERM or a scheduler's time limit loses at most one batch, and running the same command again
continues (clips already predicted with this model, and unchanged since, are skipped); the tables are rebuilt
in input order at the end. A folder is searched (recursively by default) for the containers cameras and
recorders write, in any case; other files are counted in the log by extension. A clip that cannot be decoded
is reported on stderr and in <stem>_errors.csv (path, reason) and left out; the others are predicted. A clip
without an audio track is predicted from its video alone (has_audio=false), an audio file from its sound alone
(has_video=false); a clip with none of the model's modalities is predicted from the model's biases, with a
warning in its row.
Options are checked before any clip is decoded. Exit status: 0 written; 1 no clip could be read; 2 bad
option, checkpoint or input (one line on stderr, nothing written).
"""

from __future__ import annotations

import sys

from omegaconf import DictConfig

from mmbehave.core.cli import command


@command("predict")
def main(cfg: DictConfig) -> None:
    from mmbehave.predicting.run import run_prediction

    output, rows, failures = run_prediction(cfg)
    if cfg.get("estimate"):
        return  # the estimate is printed; nothing was predicted
    if failures:  # each was logged as it happened; the summary goes to stderr for scripts
        names = ", ".join(str(clip) for clip, _ in failures)
        print(f"{len(failures)} of {len(failures) + len(rows)} clip(s) could not be read and were skipped: {names}",
              file=sys.stderr)
    if output is None:
        print(f"error: none of the {len(failures)} clip(s) could be read; no predictions written (the reasons are in "
              "the _errors.csv beside output=).", file=sys.stderr)
        sys.exit(1)
    print_prediction_summary(cfg, output, len(rows), len(failures))


def print_prediction_summary(cfg: DictConfig, output, predicted: int, unreadable: int) -> None:
    from mmbehave.core.summary import print_summary
    from mmbehave.predicting.state import state_paths
    from mmbehave.predicting.tables import companion_path

    made = [("predictions", f"{output}  ({predicted} clip(s))")]
    if unreadable:
        made.append(("unreadable", f"{unreadable} clip(s), reasons in {state_paths(output)[1]}"))
    if str(cfg.get("format") or "csv") == "csv":
        for table, wanted in (("segments", cfg.get("segments")), ("events", cfg.get("event_by") is not None),
                              ("review", cfg.get("review"))):
            if wanted:
                made.append((table, str(companion_path(output, table))))
    print_summary(f"Predicted {predicted} clip(s).", made)


if __name__ == "__main__":
    main()
