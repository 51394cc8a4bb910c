"""A detector of the pipeline's own fakes (Chan et al. 2019, section 5).

The paper pairs the generator with a classifier that tells real videos of a
person from videos generated of them, looking at two consecutive frames at a
time (temporal artifacts are part of what gives a fake away). This package:

- :mod:`.pairs`: which frame pairs (t, t+1) a subject contributes to which split
  (training frames, held-out frames), never across a scene cut, a split boundary
  or a frame without a person;
- :mod:`.data`: the 6-channel pair tensors, real and generated, with the same
  random crop and flip for both frames of a pair;
- :mod:`.model`: the classifier (a small CNN by default, an ImageNet ResNet-18
  when its weights are on disk);
- :mod:`.checkpoint`: self-describing detector checkpoints;
- :mod:`.train`: the training loop (BCE, Adam);
- :mod:`.metrics`: accuracy, average precision, ROC;
- :mod:`.score`: scoring frame stores and videos, the metrics table, the plots.
"""
