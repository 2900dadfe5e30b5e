"""CPU speed layers: drop-in Keras layers with faster CPU training passes.

Optional (`--fused_batch_norm`, `--split_conv_grad`): only `models` builds
them, and only when asked. Each keeps its parent's variables, config and
numbers, so a checkpoint trained with them restores into the stock layers
(`rundir.restore` does, and exports stock-layer `.keras` files). Kept
because they pay on the CPUs measured: on an AVX-512 (BF16) Xeon with
oneDNN, the paper-size step is 14% (float32) and 31% (bfloat16) faster with
them, the CPU preset's 7% and 17% (`benchmarks/results/step/
speed_layers_bench.json`); on an AVX2 EPYC with oneDNN they were within
noise (benchmarks/README.md).
"""

from __future__ import annotations

import keras
from keras import layers
import tensorflow as tf


@keras.saving.register_keras_serializable(package="pixelda_tf")
class FusedBatchNormalization(layers.BatchNormalization):
  """Keras BatchNormalization whose training pass is one fused TF op.

  Why: the built-in layer computes moments and normalises with ~10 separate
  elementwise/reduction ops (and as many in the backward pass), about half a
  second of a paper-size CPU step; `FusedBatchNormV3` (and its gradient op)
  does the same work in one pass each. Same variables, same config, same
  numbers: the moving statistics are updated exactly as Keras does (with the
  biased batch variance; the op reports the unbiased one, so it is rescaled).
  Only 4-D channels-last inputs in training take the fused path; everything
  else (inference, other ranks, masks, scale, renorm, synchronised statistics)
  is the parent's code. Under a mixed policy the inputs and outputs are 16-bit
  and the statistics, offset and moving averages float32, as in the parent
  (the op's float32 `U` type).
  """

  def _fusable(self, inputs, training, mask) -> bool:
    return (training and self.trainable and mask is None
            and len(inputs.shape) == 4 and self.axis in (-1, 3)
            and not (self.scale or self.renorm or self.synchronized)
            and inputs.dtype in ("float32", "bfloat16", "float16"))

  def call(self, inputs, training=None, mask=None):
    if not self._fusable(inputs, training, mask):
      return super().call(inputs, training=training, mask=mask)
    channels = inputs.shape[-1]
    # beta is float32 under any policy (Keras creates it with autocast off).
    f32 = tf.float32
    offset = self.beta if self.center else tf.zeros((channels,), f32)
    outputs, mean, unbiased_var, _, _, _ = tf.raw_ops.FusedBatchNormV3(
        x=inputs, scale=tf.ones((channels,), f32), offset=offset,
        mean=tf.zeros((0,), f32), variance=tf.zeros((0,), f32),
        epsilon=self.epsilon, exponential_avg_factor=1.0, data_format="NHWC",
        is_training=True)
    n = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), f32)
    variance = unbiased_var * ((n - 1.0) / tf.maximum(n, 1.0))
    mean, variance = tf.stop_gradient(mean), tf.stop_gradient(variance)
    m = self.momentum
    self.moving_mean.assign(self.moving_mean * m + mean * (1.0 - m))
    self.moving_variance.assign(self.moving_variance * m + variance * (1.0 - m))
    return outputs


# Taps of a 3-wide stride-2 SAME kernel that reach even / odd input positions,
# in the order a stride-1 correlation over the (front-padded) output gradient
# meets them: x[2j] gets dy[j-1]*w[2] + dy[j]*w[0]; x[2j+1] gets dy[j]*w[1].
_PHASE_TAPS = ((2, 0), (1,))


def _stride2_input_grad(dy, kernel):
  """d(conv2d(x, kernel, stride 2, SAME))/dx for 3x3 kernels, even H and W.

  Split into the four (row, column) parities of x: each is a small stride-1
  convolution of dy (1x1 to 2x2 taps), interleaved back by depth_to_space.
  Same multiply-adds as the forward conv.
  """
  phases = []
  for r, rows in enumerate(_PHASE_TAPS):
    for c, cols in enumerate(_PHASE_TAPS):
      k = tf.gather(tf.gather(kernel, rows, axis=0), cols, axis=1)
      padded = tf.pad(dy, [[0, 0], [1 - r, 0], [1 - c, 0], [0, 0]])
      phases.append(tf.nn.conv2d(padded, tf.transpose(k, [0, 1, 3, 2]),
                                 1, "VALID"))
  return tf.nn.depth_to_space(tf.concat(phases, axis=-1), 2)


@tf.custom_gradient
def _stride2_conv(x, kernel):
  y = tf.nn.conv2d(x, kernel, 2, "SAME")

  def grad(dy):
    dkernel = tf.raw_ops.Conv2DBackpropFilter(
        input=x, filter_sizes=tf.shape(kernel), out_backprop=dy,
        strides=[1, 2, 2, 1], padding="SAME")
    return _stride2_input_grad(dy, kernel), dkernel

  return y, grad


@keras.saving.register_keras_serializable(package="pixelda_tf")
class Stride2Conv2D(layers.Conv2D):
  """Conv2D (3x3, stride 2, SAME, NHWC) with a faster input gradient.

  Why: TensorFlow's CPU `Conv2DBackpropInput` for stride 2 runs ~15x slower
  per FLOP than the forward conv (0.46 s of a paper-size step for D's last
  conv alone); the same gradient as four stride-1 convolutions costs about
  what the forward conv does. Same variables, config and values as Conv2D;
  other shapes (odd sizes, other kernels) use the parent's code.
  """

  def convolution_op(self, inputs, kernel):
    shape = inputs.shape
    if (self.kernel_size == (3, 3) and self.strides == (2, 2)
        and self.padding == "same" and self.data_format == "channels_last"
        and self.dilation_rate == (1, 1) and self.groups == 1
        and len(shape) == 4 and shape[1] is not None and shape[2] is not None
        and shape[1] % 2 == 0 and shape[2] % 2 == 0):
      return _stride2_conv(tf.convert_to_tensor(inputs),
                           tf.convert_to_tensor(kernel))
    return super().convolution_op(inputs, kernel)
