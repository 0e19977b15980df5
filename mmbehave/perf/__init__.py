"""Measurements behind ``python -m mmbehave.benchmark``: each compares what the real code achieves with a bound
measured in the same run on the same machine, so that the ratio, not a raw number, says how close it runs.

    peak      dense 2048² matmuls in fp32 and in bf16 autocast: this machine's matrix units at best, which
              the model row's counted FLOPs per second are put against (perf/peak.py)
    loop      the training loop train.py runs (loading, augmentation, logging, checkpoints) vs a bare
              forward + backward + step of the same model on the same batches held in memory
    loader    the data loader's clips/s vs what training consumes
    startup   process start to the first training step vs the bare import of what the run needs
    sweep     time per trial of a frozen-backbone fusion sweep, feature cache on vs off, vs the FLOPs bound
    schedule  one sweep of long and short trials on two workers, in batches and asynchronously: wall time,
              trials per hour and the workers' busy fraction (perf/sweep_schedule.py)
    model     the configured model on random inputs: clips/s, latency, parameters; counted FLOPs per second
              against the peak row (a CPU) or the GPU's published peak
    predict   predict's archive pass on 720p field clips vs the slower of decoding just the needed frames (times
              the workers) and the model alone; beside it the reader before (main process, every frame decoded)
    predict_memory  peak memory of predict over 200 and 2,000 tiny clips (flat: nothing kept per clip)
    frozen_sweep  a cached fusion sweep over frozen VideoMAE-base- and ResNet18-shaped encoders vs one uncached
              training of the same epochs, with each trial's fixed part (perf/frozen_sweep.py; on request)
    time_to_good  one mbt study run four ways (basic, batches, asynchronous, asynchronous + pruning): time to a
              good value and to the unpruned sweep's best (perf/time_to_good.py; on request)
    precision  models trained in fp32, their test split predicted in fp32, with precision=auto's plan and all
              in bf16: top-1 agreement per head, macro-F1 against the seed spread, clips/s of the model pass and
              of feature-cache encoding (perf/precision_rows.py; on request)
    int8      models trained per seed, exported as dynamic int8 (torch) and static int8 (ONNX): clips/s on the test
              split held in memory against torch fp32 and precision=auto, top-1 agreement per head, batch-1 latency;
              the faster int8 that agrees >= 0.98 is the one kept (perf/int8_rows.py; on request, resumable)
    distill   the teacher, a student on labels alone, distilled, and distilled with an unlabelled pool, over
              seeds: test macro-F1, FLOPs a clip, clips/s on pre-decoded inputs (torch, ONNX fp32 and int8;
              perf/distill_rows.py; on request, each run's result kept so a killed measurement continues;
              benchmark.distill_folds=N: site folds instead of seeds, on the field-like benchmark)
    active_learning  review -> train rounds simulated on the field-like benchmark: least certain first, audio-video
              disagreement and random, test macro-F1 against labels used, over seeds, with a figure
              (perf/active_learning_rows.py; on request, each round's result kept so a killed measurement continues)
    pretraining  in-domain pretraining on the field-like benchmark: from scratch, pretrained on every clip, on the
              training sites' clips only, at shares of the labels, over site folds, with a figure and the cost
              (perf/pretraining_rows.py; on request, each run's result kept so a killed measurement continues)
"""
