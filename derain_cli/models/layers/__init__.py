"""Building blocks shared by several architectures, each written once.

* ``conv``: 3x3 convolutions in the authors' ``nn.Sequential`` layout, residual blocks, in-place
  helpers for inference (PReNet family, BRN, DRN, SAPNet, VRGNet, JORDER-E, ...).
* ``recurrent``: the fused ConvLSTM gates (PReNet family, BRN) and DCSFN's ConvGRU.
* ``pointwise``: 1x1 convolutions as matrix products over channels-last pixels (GLGFN, DRSformer,
  DCSFN).
* ``restormer``: Restormer's LayerNorm, resampling, transposed channel attention, gated
  feed-forward and the transformer block (GLGFN, DRSformer).
* ``sparse_attention``: the four-mask top-k sparse softmax (DRSformer, GLGFN).

Parameter names inside these blocks follow the authors' releases, so checkpoints load unchanged.
"""
