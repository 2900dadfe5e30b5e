"""pixelda-tf: PixelDA (Bousmalis et al., CVPR 2017) in TensorFlow 2 / Keras 3."""

import os
import platform

# TensorFlow's x86 wheels carry oneDNN convolution, batch-norm and matmul
# kernels, but turn them on by default only on CPUs with AVX512_VNNI,
# AVX512_BF16, AVX_VNNI or AMX; elsewhere (e.g. AVX2-only AMD EPYC) they need
# TF_ENABLE_ONEDNN_OPTS=1. Without them the stock Eigen convolutions run the
# backward passes far slower, and the paper-size step takes 20-40% longer
# (measured with `python -m pixelda_tf.bench`; see WORKSPACE_NOTES, "oneDNN").
# TensorFlow reads the variable once, when it loads, so it is set here, before
# this package imports TensorFlow; an explicit TF_ENABLE_ONEDNN_OPTS is
# respected, and `runtime.setup` logs what was decided. Other platforms'
# builds are left to TensorFlow's own default.
ON_X86 = platform.machine().lower() in ("x86_64", "amd64")
ONEDNN_SET_HERE = ON_X86 and "TF_ENABLE_ONEDNN_OPTS" not in os.environ
if ONEDNN_SET_HERE:
  os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1"

__version__ = "0.1.0"
