"""MLflow: where the store is and whether it answers (``store``), and what every run logs (``runs``)."""
