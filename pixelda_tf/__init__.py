"""pixelda-tf: PixelDA (Bousmalis et al., CVPR 2017) in TensorFlow 2 / Keras 3."""

import os
import platform

# TensorFlow's x86 wheels carry oneDNN convolution, batch-norm and matmul
# kernels, but turn them on by default only on CPUs with AVX512_VNNI,
# AVX512_BF16, AVX_VNNI or AMX; elsewhere (e.g. AVX2-only AMD EPYC) they need
# TF_ENABLE_ONEDNN_OPTS=1. Without them the stock Eigen convolutions run the
# backward passes far slower, and the paper-size step takes 20-40% longer
# (WORKSPACE_NOTES, issue 3, round 6). TensorFlow reads the variable once,
# when it loads, so it is set here, before this package imports TensorFlow;
# an explicit TF_ENABLE_ONEDNN_OPTS=0 is respected. Other platforms' builds
# are left to TensorFlow's own default.
ON_X86 = platform.machine().lower() in ("x86_64", "amd64")
if ON_X86:
  os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"
