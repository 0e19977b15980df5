"""Scores of a classifier's predictions, pure numpy (no scikit-learn in the training path).

    confusion          confusion matrix -> accuracy, per-class precision / recall / F1
    average_precision  per-class and macro average precision (scikit-learn's definition)
    class_scores       one head's long-tail scores: per class, macro / micro, frequent vs rare classes
    epoch_scores       one epoch's validation scores of one head, under the names metric_names lists
    metric_names       the names every epoch records (what training.monitor and optimized_metric may name)
"""
