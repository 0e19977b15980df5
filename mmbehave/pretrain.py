"""Pretrain the encoders on clips nobody labelled, then fine-tune from them with a few labels.

    python -m mmbehave.pretrain input=archive/                               # every clip under archive/, any container
    python -m mmbehave.pretrain data=synthetic_field                         # the built-in field data's clips, labels unread
    python -m mmbehave.pretrain input=clips.csv video_encoder=videomae_base  # continue a VideoMAE checkpoint in-domain
    python -m mmbehave.pretrain resume=outputs/<date>/<time>/checkpoints/latest.pth

    clips ─► VideoMAE masked autoencoding (tube masking, pretrain.mask_ratio) + picture ↔ sound InfoNCE
          ─► <run>/pretrained/video/ and <run>/pretrained/audio_resnet18.pth
    python -m mmbehave.train video_encoder.pretrained=true video_encoder.model_name=<run>/pretrained/video \\
        audio_encoder.pretrained=true audio_encoder.weights_path=<run>/pretrained/audio_resnet18.pth

Logged to MLflow (experiment ``pretrain``): the clips, the objective, every setting, the losses per epoch, the
outputs' digests. SIGTERM, Ctrl-C and kill -9 continue with ``resume=``. docs/pretraining.md has the recipe and
what it was worth on the built-in field benchmark.
"""

from __future__ import annotations

from omegaconf import DictConfig

from mmbehave.core.cli import command


@command("pretrain")
def main(cfg: DictConfig) -> None:
    from mmbehave.pretraining.run import run_pretraining

    run_pretraining(cfg)


if __name__ == "__main__":
    main()
