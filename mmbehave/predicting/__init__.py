"""What ``mmbehave.predict`` makes of the model's probabilities: answers an ecologist can use.

    options.py      the command's answer options, checked before any clip is decoded
    thresholds.py   threshold=: a top probability below it makes the label ``uncertain``
    segments.py     a long clip cut into windows of the model's length, each preprocessed as in training
    answers.py      probabilities -> label / prob / top-k / p(<head>=<class>) columns; segments combined per clip
    events.py       clips grouped into events (a table's column, or a time gap), one row per event
    clip_times.py   when a clip was recorded (container creation_time, else the file's mtime)
    provenance.py   which model made a table: its MLflow run id and checkpoint hash
"""
