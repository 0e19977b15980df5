"""Trained models as files: the checkpoint format, finding one (path, MLflow run or model), loading it
ready for inference, exporting it (fp32 / int8), and logging it as an MLflow model."""
