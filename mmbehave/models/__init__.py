"""Models: encoders turn each modality into tokens, a fusion merges them, one head per ``model.heads`` entry
classifies (species and behaviour by default; any number, single- or multi-label).

    video ─► video_encoders.VideoMAEEncoder | cnn3d.CNN3DEncoder ─┐
                                                                  ├─► mbt.MBTFusion | concat_fusion.ConcatFusion
    audio ─► audio_encoders.ResNetAudioEncoder ───────────────────┘           │
                                         classifier.MultiModalClassifier: heads[<name>] for each model.heads entry

`pretrained` holds the weight-loading policy (local first, network only after a quick probe);
`ablation.absent_modality` is the `none` option of an encoder group. Config groups
`conf/{video_encoder,audio_encoder,fusion,model}/` target the builders here by their full module paths, so
nothing is re-exported from this package and importing it loads neither transformers nor torchvision.
"""
