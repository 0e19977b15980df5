"""Data: raw clips -> processed tensors -> training batches."""
