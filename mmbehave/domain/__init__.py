"""The rules of the problem itself, which every layer above shares: heads (the label columns a model predicts,
single- or multi-label), cross-validation folds (where they live, what a fold run is tagged), and the checks of a
whole config that no one part can make (MBT's layers, VideoMAE's token grid, heads against the data)."""
