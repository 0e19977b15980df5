"""The benchmark's results as the Markdown the README records: one row per measurement beside its bound and
target, then a paragraph per sweep measurement."""

from __future__ import annotations

from mmbehave.perf.targets import TARGETS


def markdown(results: dict) -> str:
    rows = [("loop", "training loop clips/s ÷ bare forward+backward+step", "real_clips_per_s", "bare_clips_per_s"),
            ("epoch", "whole epoch clips/s (training, validation, saves, logging) ÷ bare steps", "whole_clips_per_s",
             "bare_clips_per_s"),
            ("sweep", "cache speed-up per trial ÷ FLOPs bound", "speedup", "bound"),
            ("startup", "process start → first step ÷ bare imports (s)", "first_step_s", "imports_s"),
            ("loader", "loader clips/s ÷ training clips/s", "loader_clips_per_s", "training_clips_per_s"),
            ("predict", "predict clips/s on 720p field clips ÷ bound (decode-only x workers, model alone)",
             "predict_clips_per_s", "bound_clips_per_s"),
            ("predict_memory", "predict peak MiB, 10x the clips ÷ 1x", "peak_high", "peak_low"),
            ("schedule", "asynchronous trials: workers' busy time ÷ their time", "busy_s", "worker_s"),
            ("frozen_sweep", "cached fusion sweep over frozen VideoMAE-base ÷ one uncached training (s)", "sweep_s",
             "single_s"),
            ("time_to_good", "pruned sweep: time to the unpruned best ÷ the unpruned sweep's wall (s)",
             "pruned_to_best_s", "unpruned_wall_s"),
            ("precision", "precision=auto: test clips given fp32's top-1 answer, lowest head ÷ all", "ratio", "all"),
            ("int8", "int8 kept (agrees >= 0.98 with fp32 per head): clips/s ÷ torch fp32's", "ratio", "all"),
            ("distill", "distilled student's test macro-F1 ÷ its teacher's (mean over seeds)", "ratio", "all"),
            ("active_learning", "active learning: the best strategy's last-round test macro-F1 ÷ all labels'", "ratio",
             "all"),
            ("pretraining", "in-domain pretraining (archive): test macro-F1 at the fewest labels ÷ from scratch's",
             "pretrained_f1", "scratch_f1")]
    lines = ["| measurement | real | bound | ratio | target | |", "|---|---|---|---|---|---|"]
    for key, label, real, bound in rows:
        if key not in results:
            continue
        row = results[key]
        sign, target = TARGETS[key]
        met = row["ratio"] >= target if sign == ">=" else row["ratio"] <= target
        lines.append(f"| {label} | {row[real]:.3g} | {row[bound]:.3g} | {row['ratio']:.2f} | {sign} {target} | "
                     f"{'met' if met else 'not met'} |")
    lines += sweep_details(results) + precision_details(results) + distill_details(results) + active_learning_details(results)
    lines += pretraining_details(results) + int8_details(results)
    if "epoch" in results:
        row = results["epoch"]
        lines += ["", f"whole epoch {row['whole_epoch_s']:.2f} s: training {row['train_s']:.2f} s, validation "
                      f"{row['val_s']:.2f} s, saves {row['save_s']:.2f} s (the training thread's share; "
                      "training.background_saves writes them while the next epoch trains)."]
    if "predict" in results:
        row = results["predict"]
        lines += ["", f"predict before the archive pipeline (main process, every frame decoded): "
                      f"{row['serial_full_decode_clips_per_s']:.3g} clips/s; now {row['predict_clips_per_s']:.3g} "
                      f"({row['speedup_over_serial']:.1f}x) with {row['workers']} worker(s)."]
    if "schedule" in results:
        row = results["schedule"]
        lines += ["", "| sweep schedule (trials of " + ", ".join(map(str, row["trial_epochs"])) + " epochs, "
                  f"{row['workers']} workers) | wall s | trials/h | busy |", "|---|---|---|---|"]
        lines += [f"| {name} | {row[name]['wall_s']:.0f} | {row[name]['trials_per_hour']:.0f} | {row[name]['busy']:.2f} |"
                  for name in ("batch", "async")]
    if "model" in results:
        model = results["model"]
        lines += ["", "| model on random inputs | value |", "|---|---|"]
        lines += [f"| {key} | {value} |" for key, value in model.items()]
    return "\n".join(lines)


def distill_details(results: dict) -> list[str]:
    """Each model's test macro-F1 (mean ± spread over seeds), FLOPs and speed, teacher against student."""
    if "distill" not in results:
        return []
    row, scores = results["distill"], results["distill"]["test_macro_f1"]
    repeats = f"{row['folds']} site folds" if row.get("folds") else f"{len(row['seeds'])} seeds"
    lines = ["", f"| {row['student']} student, {repeats} | test macro-F1 (mean ± spread) |", "|---|---|"]
    names = {"teacher": "teacher (the default model)", "labels_only": "student, labels only",
             "distilled": "student, distilled", "distilled_pool": f"student, distilled + {row['pool_clips']} unlabelled"}
    lines += [f"| {names[kind]} | {entry['mean']:.4f} ± {entry['spread']:.4f} |" for kind, entry in scores.items()]
    lines += ["", f"FLOPs a clip: teacher {row['teacher_gflop']:.3f} GFLOP, student {row['student_gflop']:.4f} "
                  f"({row['flops_ratio']:.1f}x fewer). Pre-decoded test inputs, batch 8, clips/s: teacher "
                  f"{row['teacher_clips_per_s']:.0f}, student {row['student_clips_per_s']:.0f}"
              + (f", student ONNX fp32 {row['student_onnx_fp32_clips_per_s']:.0f}, ONNX int8 "
                 f"{row['student_onnx_int8_clips_per_s']:.0f} (top-1 agreement with fp32 "
                 f"{row['int8_top1_agreement']:.3f})" if "student_onnx_int8_clips_per_s" in row else "") + "."]
    return lines


def active_learning_details(results: dict) -> list[str]:
    """Test macro-F1 (and the rare behaviours') against labels used, per strategy, mean ± std over seeds."""
    if "active_learning" not in results:
        return []
    row = results["active_learning"]
    strategies = row["strategies"]
    labels = next(iter(strategies.values()))["labels"]
    lines = ["", f"Active learning, {row['start_per_class']} labelled clips per class to start, {row['k']} reviewed a "
                 f"round, {len(row['seeds'])} seeds: test macro-F1 on held-out sites (rare behaviours' macro-F1), mean ± std",
             "", "| labels | " + " | ".join(strategies) + " |", "|---" * (len(strategies) + 1) + "|"]
    for index, count in enumerate(labels):
        lines.append(f"| {count} | " + " | ".join(
            f"{s['f1_mean'][index]:.3f} ± {s['f1_std'][index]:.3f} ({s['rare_mean'][index]:.3f})"
            for s in strategies.values()) + " |")
    everything = row["all_labels"]
    lines.append(f"| all {everything['labels']} | " + " | ".join(
        f"{everything['test_macro_f1']:.3f} ({everything['rare_macro_f1']:.3f})" for _ in strategies) + " |")
    reach = ", ".join(f"{name} {s['labels_to_95'] if s['labels_to_95'] is not None else f'more than {labels[-1]}'}"
                      for name, s in strategies.items())
    lines += ["", f"Labels to reach 0.95 of the all-labels score: {reach}."]
    if "margin_beats_random" in row:
        lines.append("Least-certain-first " + ("beat" if row["margin_beats_random"] else "did not beat") +
                     " random beyond their spreads in the last round.")
    return lines


def precision_details(results: dict) -> list[str]:
    """The peak row, and what auto and all-bf16 did to the answers and the speed."""
    lines: list[str] = []
    if "peak" in results:
        peak = results["peak"]
        lines += ["", f"peak (2048² matmul, {peak['threads']} threads): fp32 {peak['fp32_gflop_per_s']:.0f} GFLOP/s, "
                      f"bf16 {peak['bf16_gflop_per_s']:.0f} ({peak['bf16_over_fp32']:.1f}x); {peak['bf16_units']}."]
    if "precision" in results:
        row = results["precision"]
        lines += ["", f"| against fp32, test split ({row['clips']} clips), {len(row['seeds'])} seeds of "
                      f"{row['epochs']} epochs | lowest top-1 agreement | largest macro-F1 change | seed spread | "
                      "model pass | cache encoding |", "|---|---|---|---|---|---|"]
        for precision in ("auto", "bf16"):
            entry = row[precision]
            agreement = ", ".join(f"{head} {share:.3f}" for head, share in entry["lowest_agreement"].items())
            encode = f"{entry['encode_speedup']:.2f}x" if entry["encode_speedup"] else "-"
            lines.append(f"| {precision} | {agreement} | {entry['largest_macro_f1_change']:.4f} | "
                         f"{row['seed_spread']:.4f} | {entry['speedup']:.2f}x | {encode} |")
        lines += ["", f"auto's plan: {row['auto']['plan']}"]
    return lines


def int8_details(results: dict) -> list[str]:
    """Each runtime against torch fp32 on the test split held in memory: speed, agreement, size."""
    if "int8" not in results:
        return []
    row = results["int8"]
    lines = ["", f"| test split ({row['clips']} clips, batch {row['batch_size']}), {len(row['seeds'])} seeds | clips/s "
                 "| ÷ torch fp32 | lowest top-1 agreement with torch fp32 | ms a clip, batch 1, 1 thread | MB |",
             "|---|---|---|---|---|---|"]
    for runtime, entry in row["runtimes"].items():
        agreement = ", ".join(f"{head} {share:.3f}" for head, share in entry["lowest_agreement"].items())
        latency = f"{entry['latency_ms_batch1']:.1f}" if entry["latency_ms_batch1"] is not None else "-"
        lines.append(f"| {runtime} | {entry['clips_per_s']:.3g} | {entry['speedup']:.2f}x | {agreement} | {latency} | "
                     f"{entry['size_mb']:.1f} |")
    kept = row["kept"] or f"neither (no int8 model agreed >= {row['min_agreement']})"
    lines += ["", f"int8 kept: {kept}; fp32's test macro-F1 spread over the seeds {row['seed_spread']:.4f}."]
    return lines


def sweep_details(results: dict) -> list[str]:
    """What the sweep rows measured beyond their ratio: where a trial's time goes, and the time-to-good table."""
    lines: list[str] = []
    if "sweep" in results:
        row = results["sweep"]
        lines += ["", f"cached sweep: a trial {row['trial_s_cache_on']:.1f} s (its epochs {row['epochs_s_cache_on']:.1f} s "
                      f"+ fixed {row['fixed_s_cache_on']:.1f} s) against {row['trial_s_cache_off']:.1f} s uncached; whole "
                      f"sweeps {row['sweep_s_cache_on']:.0f} s (cache built inside) and {row['sweep_s_cache_off']:.0f} s. "
                      f"In seconds rather than FLOPs the bound is {row['time_bound']:.2f} (encoder forward "
                      f"{row['encoder_forward_ms']:.0f} ms, fusion step {row['fusion_step_ms']:.0f} ms a batch): the "
                      f"speed-up is {row['speedup'] / row['time_bound']:.2f} of it."]
    if "frozen_sweep" in results:
        row = results["frozen_sweep"]
        lines += ["", f"frozen sweep: {row['trials']} trials of {row['epochs']} epochs on {row['clips'][0]} + "
                      f"{row['clips'][1]} clips of {row['input']}; features cached in {row['cache_build_s']:.0f} s; a "
                      f"trial {row['trial_s']:.1f} s = fusion epochs {row['trial_epochs_s']:.1f} s + fixed "
                      f"{row['trial_fixed_s']:.1f} s."]
    if "time_to_good" in results:
        row = results["time_to_good"]
        lines += ["", f"| `hparams_search=mbt`, {row['trials']} trials of {row['epochs']} epochs, same seed | s to "
                      f"reach {row['value']} | s to reach {row['unpruned_best']:.3f} (unpruned best) | wall s | best | "
                      "pruned |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {mode} | {_seconds(row[mode]['to_value_s'])} | {_seconds(row[mode]['to_unpruned_best_s'])} | "
                  f"{row[mode]['wall_s']:.0f} | {row[mode]['best']:.3f} | {row[mode]['pruned']} |"
                  for mode in row["modes"]]
        lines += ["", f"pruned sweep: {' '.join(row['pruning'])}; learning curves: {row['learning_curves']}"]
    return lines


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.0f}"


def pretraining_details(results: dict) -> list[str]:
    """Test macro-F1 (rare behaviours') per start and label fraction, mean ± std over the site folds."""
    if "pretraining" not in results:
        return []
    row = results["pretraining"]
    names = {"scratch": "from scratch", "archive": "pretrained on the archive (every site's clips)",
             "training_sites": "pretrained on the training sites' clips only"}
    fractions = row["fractions"]
    lines = ["", f"In-domain pretraining, {row['folds']} site folds: test macro-F1 on held-out sites (rare behaviours' "
                 "macro-F1), mean ± std", "",
             "| start | " + " | ".join(f"{100 * f:g}% of the labels" for f in fractions) + " |",
             "|---" * (len(fractions) + 1) + "|"]
    for condition, entry in row["conditions"].items():
        lines.append(f"| {names[condition]} | " + " | ".join(
            f"{entry['f1_mean'][i]:.3f} ± {entry['f1_std'][i]:.3f} ({entry['rare_mean'][i]:.3f})"
            for i in range(len(fractions))) + " |")
    lines += ["", f"Pretraining: {row['seconds_per_1000_clips_epoch']:.1f} s per 1,000 clips an epoch on this machine."]
    return lines
