"""The active_learning benchmark row's choices (``mmbehave/perf/active_learning_rows.py``): the start set covers
every class, each strategy ranks the clips it should, and the summary says which labels reach 0.95 of all."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mmbehave.perf.active_learning_rows import Plan, disagreement, margins, start_set, summarise


def test_the_start_set_has_the_stated_number_of_clips_of_every_class_of_every_head():
    train = pd.DataFrame({"clip_id": [f"c{i}" for i in range(40)], "species": ["deer", "fox"] * 20,
                          "behavior": ["walking"] * 36 + ["alarm"] * 4})
    picked = start_set(train, 3, seed=0)
    rows = train[train["clip_id"].isin(picked)]
    assert rows["species"].value_counts().min() >= 3 and rows["behavior"].value_counts().min() >= 3
    assert len(picked) <= 3 * 2 + 3 * 2 and picked == start_set(train, 3, seed=0) != start_set(train, 3, seed=1)


def test_margin_ranks_the_closest_call_of_any_head_first_and_disagreement_the_senses_that_differ():
    fused = {"species": np.array([[0.9, 0.1], [0.55, 0.45], [0.8, 0.2]]),
             "behavior": np.array([[0.5, 0.5], [0.9, 0.1], [0.7, 0.3]])}
    assert list(np.argsort(margins(fused))) == [0, 1, 2]       # clip 0's behaviour is a tie: the least certain
    video = {"species": np.array([[0.9, 0.1], [0.6, 0.4], [0.1, 0.9]]), "behavior": fused["behavior"]}
    audio = {"species": np.array([[0.8, 0.2], [0.6, 0.4], [0.2, 0.8]]), "behavior": fused["behavior"]}
    assert int(np.argmax(disagreement(fused, [video, audio]))) == 2   # both senses alone say the other species


def test_the_summary_gives_the_labels_to_reach_095_of_all_labels_and_whether_margin_beat_random(tmp_path):
    def chain(scores):
        return [{"labels": n, "test_macro_f1": f, "rare_macro_f1": f / 2} for n, f in zip((10, 20, 30), scores)]

    curves = {"margin": [chain([0.5, 0.8, 0.95]), chain([0.5, 0.82, 0.93])],
              "random": [chain([0.5, 0.6, 0.7]), chain([0.5, 0.62, 0.72])]}
    reference = [{"labels": 100, "test_macro_f1": 0.96, "rare_macro_f1": 0.9}] * 2
    plan = Plan(tmp_path, tmp_path, [], 3, 2, 10, 1, 1, 1)
    result = summarise(plan, [0, 1], curves, reference)
    assert result["strategies"]["margin"]["labels_to_95"] == 30 and result["strategies"]["random"]["labels_to_95"] is None
    assert result["margin_beats_random"] is True and Path(result["figure"]).is_file()
    assert (tmp_path / "summary.json").is_file()
