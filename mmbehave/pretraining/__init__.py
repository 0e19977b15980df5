"""In-domain self-supervised pretraining of the encoders (python -m mmbehave.pretrain)."""
