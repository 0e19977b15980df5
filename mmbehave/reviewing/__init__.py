"""The review loop's parts: a queue of clips (``queue.py``), the decisions people make on them (``decisions.py``),
what the browser plays and shows for each clip (``media.py``), and the page that serves them (``app.py``)."""
