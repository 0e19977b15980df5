"""An mmbehave model as an MLflow model, from code: this file is the model's definition, logged with it.

MLflow's "models from code" keep no pickled object: ``mlflow.pyfunc.log_model(python_model=<this file>,
artifacts={"checkpoint": best.pth})`` stores this file and the checkpoint; ``mlflow.pyfunc.load_model`` runs the
file and calls ``load_context``, which reads the checkpoint through mmbehave's own ``weights_only=True`` path
(``mmbehave.checkpoints.trained_model``): loading a model from a registry never runs code from the weights file.

    model = mlflow.pyfunc.load_model("runs:/<run id>/model")     # or "models:/<name>/<version>"
    model.predict({"frames": uint8 (B, T, 3, H, W), "mel": float32 (B, n_mels, time)})   # processed/ files
      -> DataFrame: per single head <head>, <head>_prob; per multi head <head> (its labels at its thresholds,
         joined by its separator); and one p(<head>=<class>) column per class

The inputs are what ``mmbehave.preprocess`` writes (``processed/video_frames/<clip>.pt``,
``processed/mel_spectrograms/<clip>.npy``, stacked); optional ``has_video`` / ``has_audio`` (B,) booleans mark
clips without a modality, as in training. The model converts them as training did (frames / 255, log-mels
standardised with the training clips' statistics).
"""

from __future__ import annotations

import mlflow
from mlflow.pyfunc import PythonModel
from mlflow.types.type_hints import TypeFromExample


class MMBehaveModel(PythonModel):
    def load_context(self, context) -> None:
        from mmbehave.checkpoints.trained_model import load_trained_model

        self.trained = load_trained_model(context.artifacts["checkpoint"], "cpu")

    # The input is what the logged input example is (a dict of named arrays), which no other MLflow type hint
    # describes; the signature beside it names the shapes (mlflow_models.py).
    def predict(self, context, model_input: TypeFromExample, params=None):
        import numpy as np
        import pandas as pd
        import torch

        trained = self.trained
        inputs: dict = {}
        frames = model_input.get("frames")
        mel = model_input.get("mel")
        count = len(frames) if frames is not None else len(mel)
        if "video" in trained.modalities and frames is not None:
            video = torch.as_tensor(np.asarray(frames)).permute(0, 2, 1, 3, 4).float().div_(255.0)
            inputs["video"] = video
            inputs["video_present"] = torch.as_tensor(np.asarray(model_input.get("has_video", [True] * count)), dtype=torch.bool)
        if "audio" in trained.modalities and mel is not None:
            audio = (torch.as_tensor(np.asarray(mel, dtype=np.float32)) - trained.mel_mean) / trained.mel_std
            inputs["audio"] = audio.unsqueeze(1)
            inputs["audio_present"] = torch.as_tensor(np.asarray(model_input.get("has_audio", [True] * count)), dtype=torch.bool)
        with torch.no_grad():
            output = trained.model(**inputs)
        from mmbehave.metrics.epoch_scores import probabilities

        table, per_class = {}, {}
        thresholds = trained.thresholds
        for head in trained.heads:
            names = trained.classes[head.name]
            probs = probabilities(head, output.logits[head.name])
            if head.multi:
                chosen = probs >= np.asarray(thresholds[head.name])
                table[head.name] = [head.labels_text(names, row) for row in chosen]
            else:
                table[head.name] = [names[i] for i in probs.argmax(axis=1)]
                table[f"{head.name}_prob"] = probs.max(axis=1)
            per_class.update({f"p({head.name}={name})": probs[:, index] for index, name in enumerate(names)})
        return pd.DataFrame({**table, **per_class})


mlflow.models.set_model(MMBehaveModel())
