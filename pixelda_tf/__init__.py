"""pixelda-tf: PixelDA (Bousmalis et al., CVPR 2017) in TensorFlow 2 / Keras 3.

Importing the package (or any library module) changes no process state: the
binaries turn on TensorFlow's oneDNN CPU kernels themselves
(`pixelda_tf.runner.prepare_process`).
"""

import platform

# Whether this is an x86-64 machine, whose TensorFlow wheels carry oneDNN.
ON_X86 = platform.machine().lower() in ("x86_64", "amd64")

__version__ = "0.1.0"
