"""After training: what a model gets right, which modality it leans on, and where it looks.

    predictions.py             run a model over a split, with each modality removed in turn
    metrics_tables.py          accuracy, macro-F1, top-k and per-class precision / recall / F1 / support
    confusion.py               confusion matrices as CSV and PNG
    modality_contributions.py  the drop per head and per class when a modality is removed
    attention_maps.py          CLS / bottleneck attention to video and audio tokens, on their grids
    attention_figure.py        those maps laid over the frames and the log-mel spectrogram
    plotting.py                the shared figure conventions (headless backend, atomic PNGs)
"""
