"""The learning loop's ML side: train a detector and the crop embedding on confirmed boxes,
evaluate them on a stable held-out split, and decide whether to promote them.

* :mod:`~proposals.training.data`: training frames, the stable split, repeat-factor sampling.
* :mod:`~proposals.training.detector_models`, :mod:`~proposals.training.detector`: the FCOS
  detector, its training loop and a ``proposals.regions.Detector`` wrapper.
* :mod:`~proposals.training.embedding`: batch-hard triplet fine-tuning of the feature extractor.
* :mod:`~proposals.training.evaluation`: mAP@0.5, recall@1, the promotion rule.
* :mod:`~proposals.training.checkpoints`: atomic checkpoint files.

Plain Python and torch, no Django: ``labeller/`` calls these functions through its bridge.
"""
