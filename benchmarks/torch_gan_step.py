r"""PyTorch-GAN's own PixelDA iteration, timed: a peer that is not a port of ours.

    python benchmarks/torch_gan_step.py [--batch_size=64] [--img_size=32] \
        [--steps=20] [--warmup=3] [--threads=N] [--monitor] [--json=out.json]

Runs under any Python with `torch` (it does not import pixelda_tf or
TensorFlow). The networks, losses and update are those of
eriklindernoren/PyTorch-GAN, `implementations/pixelda/pixelda.py` (read at
commit 1e35104), rewritten here with its defaults (latent_dim 10, 6 residual
blocks, 3 channels, 10 classes, Adam lr 2e-4, betas 0.5/0.999; the batch is a
flag, theirs defaults to 64):
- G: dense(z) -> a 3-channel image-sized map (no norm, no activation),
  concatenated to the image; 3x3 conv 64 + ReLU; 6 residual blocks
  (conv-BN-ReLU-conv-BN + skip, convs with biases); 3x3 conv to 3 + tanh.
- D: four stride-2 3x3 convs 3->64->128->256->512, each leaky ReLU 0.2 then
  instance norm (not after the first); a 3x3 conv 512->1: a patch of
  (img_size/16)^2 scores.
- C: the same four blocks, flatten, dense to 10 classes, softmax.
- Conv kernels N(0, 0.02), batch-norm scales N(1, 0.02) and shifts 0;
  everything else (conv biases, the dense layers) PyTorch's default init.
- One iteration: G step, g_loss = 1 * MSE(D(G(x_s, z)), 1) + 0.1 *
  (CE(C(G(x_s, z)), y) + CE(C(x_s), y)) / 2, one Adam over G's and C's
  parameters, gradients by `g_loss.backward()` (which also fills D's, then
  discarded); D step, d_loss = (MSE(D(x_t), 1) + MSE(D(G(x_s, z).detach()),
  0)) / 2, Adam over D. No gradient clipping.

Where this differs from their file: data are synthetic (fixed random images
in [-1, 1] and labels, as `torch_step.py`'s), so no data loader, MNIST
channel expand or sample images are timed; z comes from `torch.rand`, not
NumPy; softmax is given `dim=1` (theirs relies on the implicit dim, the same
for 2-D input); their loop's per-iteration monitoring (C on the target batch
and two argmax accuracies, for the printed line) runs only with `--monitor`,
because pixelda-tf's timed step has no counterpart. Note that their CE is
applied to C's softmax output (softmax twice), kept here as it is arithmetic
of theirs.

Also counts the step's conv/dense FLOPs as `python -m pixelda_tf.bench` does
(2 x MACs per forward, backward-filter and backward-input pass the iteration
runs, skipping a network's first layer's input gradient when nothing
upstream needs it). Prints one JSON line: median and all step times in
seconds, first-step time, images/s, GFLOP per step, threads and versions.
"""

import torch
from torch import nn

import torch_step  # (this folder): the shared timing harness

LATENT, CHANNELS, CLASSES, BLOCKS = 10, 3, 10, 6
LR, BETAS, LAMBDA_ADV, LAMBDA_TASK = 2e-4, (0.5, 0.999), 1.0, 0.1


class ResidualBlock(nn.Module):

  def __init__(self, features=64):
    super().__init__()
    self.block = nn.Sequential(
        nn.Conv2d(features, features, 3, 1, 1), nn.BatchNorm2d(features),
        nn.ReLU(inplace=True),
        nn.Conv2d(features, features, 3, 1, 1), nn.BatchNorm2d(features))

  def forward(self, x):
    return x + self.block(x)


class Generator(nn.Module):
  """G(img, z) -> image in [-1, 1]; img (N, 3, S, S), z (N, LATENT)."""

  def __init__(self, img_size):
    super().__init__()
    self.fc = nn.Linear(LATENT, CHANNELS * img_size ** 2)
    self.l1 = nn.Sequential(nn.Conv2d(CHANNELS * 2, 64, 3, 1, 1),
                            nn.ReLU(inplace=True))
    self.resblocks = nn.Sequential(*(ResidualBlock() for _ in range(BLOCKS)))
    self.l2 = nn.Sequential(nn.Conv2d(64, CHANNELS, 3, 1, 1), nn.Tanh())

  def forward(self, img, z):
    x = torch.cat((img, self.fc(z).view(*img.shape)), 1)
    return self.l2(self.resblocks(self.l1(x)))


def _blocks():
  """The stride-2 stack D and C share: 3 -> 64 -> 128 -> 256 -> 512."""
  layers = []
  for i, (cin, cout) in enumerate(zip((CHANNELS, 64, 128, 256),
                                      (64, 128, 256, 512))):
    layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1),
               nn.LeakyReLU(0.2, inplace=True)]
    if i:
      layers.append(nn.InstanceNorm2d(cout))
  return layers


class Discriminator(nn.Module):
  """D(img) -> (N, 1, S/16, S/16) patch scores (no sigmoid: LSGAN)."""

  def __init__(self):
    super().__init__()
    self.model = nn.Sequential(*_blocks(), nn.Conv2d(512, 1, 3, 1, 1))

  def forward(self, img):
    return self.model(img)


class Classifier(nn.Module):
  """C(img) -> (N, CLASSES) softmax probabilities."""

  def __init__(self, img_size):
    super().__init__()
    self.model = nn.Sequential(*_blocks())
    self.output_layer = nn.Sequential(
        nn.Linear(512 * (img_size // 16) ** 2, CLASSES), nn.Softmax(dim=1))

  def forward(self, img):
    return self.output_layer(torch.flatten(self.model(img), 1))


def init_weights(m):
  """Their `weights_init_normal`, applied with `module.apply`."""
  if isinstance(m, nn.Conv2d):
    nn.init.normal_(m.weight, 0.0, 0.02)
  elif isinstance(m, nn.BatchNorm2d):
    nn.init.normal_(m.weight, 1.0, 0.02)
    nn.init.zeros_(m.bias)


def layer_flops(net, *inputs):
  """Forward FLOPs per example of every Conv2d/Linear in `net`:
  [(flops, first)], `first` when the layer reads one of `inputs` directly."""
  out, hooks = [], []

  def hook(module, args, output):
    per_example = output.numel() // output.shape[0]
    if isinstance(module, nn.Conv2d):
      macs = per_example * module.in_channels // module.groups * (
          module.kernel_size[0] * module.kernel_size[1])
    else:
      macs = per_example * module.in_features
    out.append((2 * macs, any(args[0] is x for x in inputs)))

  for m in net.modules():
    if isinstance(m, (nn.Conv2d, nn.Linear)):
      hooks.append(m.register_forward_hook(hook))
  was_training = net.training
  net.eval()  # the probe must not move batch norm's running statistics
  with torch.no_grad():
    net(*inputs)
  net.train(was_training)
  for h in hooks:
    h.remove()
  return out


def _call_flops(layers, batch, filter_grads, input_grads, input_grad_needed):
  """FLOPs of one network call, as `pixelda_tf.bench._call_flops`."""
  return sum(f * batch * (1 + filter_grads
                          + (input_grad_needed if first else input_grads))
             for f, first in layers)


def step_flops(g, d, c, batch, img_size, monitor=False):
  """Counted FLOPs of one iteration, by network (with `monitor`, also the
  forward pass of C on the target batch)."""
  img = torch.zeros(2, CHANNELS, img_size, img_size)
  gl = layer_flops(g, img, torch.zeros(2, LATENT))
  dl, cl = layer_flops(d, img), layer_flops(c, img)
  return {
      # g_loss.backward(): every layer's filter and input gradient (the
      # first conv's input holds fc(z)); fc's input z needs none.
      "generator": _call_flops(gl, batch, 1, 1, 0),
      # D(fake) in the G step: filter gradients too (D's weights require
      # them; zeroed before the D step) and through to G. D(x_t) and
      # D(fake.detach()) in the D step.
      "discriminator": (_call_flops(dl, batch, 1, 1, 1)
                        + 2 * _call_flops(dl, batch, 1, 1, 0)),
      # C(fake): to C's weights and through to G; C(x_s): weights only.
      "classifier": (_call_flops(cl, batch, 1, 1, 1)
                     + _call_flops(cl, batch, 1, 1, 0)
                     + (_call_flops(cl, batch, 0, 0, 0) if monitor else 0)),
  }


def make_step(img_size, monitor=False):
  g, d, c = Generator(img_size), Discriminator(), Classifier(img_size)
  for net in (g, d, c):
    net.apply(init_weights)
  opt_g = torch.optim.Adam(list(g.parameters()) + list(c.parameters()),
                           lr=LR, betas=BETAS)
  opt_d = torch.optim.Adam(d.parameters(), lr=LR, betas=BETAS)
  mse, ce = nn.MSELoss(), nn.CrossEntropyLoss()

  def step(xs, ys, xt):
    n = xs.shape[0]
    valid = torch.ones(n, 1, img_size // 16, img_size // 16)
    fake = torch.zeros_like(valid)

    opt_g.zero_grad()
    z = torch.rand(n, LATENT) * 2 - 1
    fake_t = g(xs, z)
    label_pred = c(fake_t)
    task = (ce(label_pred, ys) + ce(c(xs), ys)) / 2
    g_loss = LAMBDA_ADV * mse(d(fake_t), valid) + LAMBDA_TASK * task
    g_loss.backward()
    opt_g.step()

    opt_d.zero_grad()
    d_loss = (mse(d(xt), valid) + mse(d(fake_t.detach()), fake)) / 2
    d_loss.backward()
    opt_d.step()

    out = d_loss.item() + g_loss.item()
    if monitor:  # their loop's accuracies (the target's labels: ys here)
      out += (label_pred.argmax(1) == ys).float().mean().item()
      out += (c(xt).argmax(1) == ys).float().mean().item()
    return out

  return step, (g, d, c)


def main():
  parser = torch_step.timing_parser(__doc__.split("\n")[0])
  parser.add_argument("--batch_size", type=int, default=64,
                      help="Their default is 64.")
  parser.add_argument("--img_size", type=int, default=32,
                      help="A multiple of 16 (D's patch is img_size/16).")
  parser.add_argument("--monitor", action="store_true",
                      help="Also time their loop's per-iteration accuracy "
                      "monitoring (C on the target batch).")
  args = parser.parse_args()
  if args.batch_size < 1 or args.img_size % 16:
    parser.error("--batch_size must be >= 1, --img_size a multiple of 16")
  torch_step.check_timing_args(parser, args)
  batch = torch_step.synthetic_batch(args.batch_size, args.img_size)
  step, nets = make_step(args.img_size, args.monitor)
  flops = step_flops(*nets, args.batch_size, args.img_size, args.monitor)
  gflop = sum(flops.values()) / 1e9
  torch_step.time_step(
      step, batch, args, networks="pytorch_gan", precision="float32",
      batch_size=args.batch_size, img_size=args.img_size,
      monitor=args.monitor, gflop_per_step=gflop,
      gflop_by_network={k: v / 1e9 for k, v in flops.items()})


if __name__ == "__main__":
  main()
