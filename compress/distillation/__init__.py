"""GAN Compression's distillation: how a student learns from a frozen teacher.

``features`` maps student layers to teacher layers (adaptors, forward hooks, the distillation
loss), ``objective`` is the student's loss and step (distill, once-for-all supernet and fine-tune
all run it), ``calibration`` re-estimates BatchNorm statistics of a sub-network, ``stage_config``
and ``stages`` build and run the distill / supernet / fine-tune stages behind their commands.
"""
