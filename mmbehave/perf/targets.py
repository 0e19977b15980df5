"""What the benchmark measures, and the target each ratio must meet."""

MEASUREMENTS = ("peak", "model", "loop", "loader", "startup", "sweep", "schedule", "predict", "predict_memory",
                "frozen_sweep", "time_to_good", "precision", "int8", "distill", "active_learning",
                "pretraining")
# The targets: real loop >= 0.95 of bare steps; cache speed-up >= 0.8 of the FLOPs bound; start-up
# <= 1.3 x the bare imports; the loader >= 3 x what training consumes.
TARGETS = {"loop": (">=", 0.95), "epoch": (">=", 0.9), "sweep": (">=", 0.80), "startup": ("<=", 1.3), "loader": (">=", 3.0),
           "predict": (">=", 0.80), "predict_memory": ("<=", 1.2), "schedule": (">=", 0.80), "frozen_sweep": ("<=", 2.0),
           "time_to_good": ("<=", 0.6), "precision": (">=", 0.99),  # precision: auto's lowest top-1 agreement with fp32
           "int8": (">=", 1.0),  # int8: the kept int8 model's clips/s ÷ torch fp32's (kept: agrees >= 0.98 per head)
           "distill": (">=", 0.95),  # distill: the share of the teacher's test macro-F1 the student keeps
           "active_learning": (">=", 0.95),  # the best strategy's last round against all labels (with a share of them)
           "pretraining": (">=", 1.0)}  # archive-pretrained test macro-F1 at the fewest labels ÷ from scratch's
