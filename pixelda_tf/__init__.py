"""pixelda-tf: PixelDA (Bousmalis et al., CVPR 2017) in TensorFlow 2 / Keras 3."""

import os

# TensorFlow's x86 wheels carry oneDNN convolution, batch-norm and matmul
# kernels, but leave them off on CPUs without AVX-512 (such as AVX2-only AMD
# EPYC) unless TF_ENABLE_ONEDNN_OPTS=1. There the stock Eigen convolutions
# run the backward passes far slower, and the paper-size step takes ~30% longer
# (WORKSPACE_NOTES, issue 3, round 6). TensorFlow reads the variable once,
# when it loads, so it is set here, before this package imports TensorFlow;
# an explicit TF_ENABLE_ONEDNN_OPTS=0 is respected.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"
