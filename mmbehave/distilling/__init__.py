"""Distillation: a small student trained from a trained teacher's answers (``python -m mmbehave.distill``)."""
