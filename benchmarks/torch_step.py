r"""The paper-size PixelDA train step in PyTorch: the peer for the step benchmark.

    python benchmarks/torch_step.py [--precision=float32|bfloat16] \
        [--steps=20] [--warmup=3] [--threads=N] [--json=out.json]

Runs under any Python with `torch` (it does not import pixelda_tf or
TensorFlow). The networks and the step are what `python -m pixelda_tf.bench`
times as `paper` (the `Config()` defaults), written with PyTorch's stock
layers, so both frameworks do the same arithmetic:
- G: dense(z) -> 32x32 map + BN + ReLU, concatenated to the image; 3x3 conv
  64 + ReLU; 6 residual blocks (conv-BN-ReLU-conv-BN + skip); 1x1 conv to 3
  channels + tanh.
- D: 3x3 conv 64 + leaky ReLU 0.2; stride-2 3x3 convs 128, 256, 512 with BN +
  leaky ReLU; dropout 0.1 and Gaussian noise 0.2 after every conv; dense to
  one logit.
- T: a private first layer per domain (5x5 conv 32 + ReLU + pool) and a shared
  head (5x5 conv 48 + ReLU + pool, dense 100, 100, 10).
- Weights start from N(0, 0.02), biases at 0; batch norm has a shift and no
  (trained) scale; z is drawn afresh every step.
- One forward pass per step (G on the source batch; D on target and adapted;
  T on source and adapted), the paper's three losses at the official
  weights, each network's gradients taken from its own loss
  (`torch.autograd.grad`, as the TF step's one tape per loss), per-tensor
  gradient clipping at norm 5 (Keras' `clipnorm`), and Adam (lr 1e-3,
  betas 0.5/0.999) for each network.

`--precision=bfloat16` runs the step under `torch.autocast("cpu",
dtype=torch.bfloat16)` (parameters and optimizer state stay float32; G's
output conv and the D and T logit layers run in float32, as under Keras'
mixed_bfloat16);
`float32` is PyTorch's own default. Data are synthetic, batch 32 of 32x32x3.
Prints one JSON line: median and all step times in seconds, images/s,
first-step time, threads and versions.
"""

import argparse
import json
import platform
import statistics
import time

import torch
from torch import nn
import torch.nn.functional as F

BATCH, SIZE, NOISE, CLASSES = 32, 32, 10, 10
DOMAIN_W, STYLE_W, TASK_IN_G_W = 0.135603587834, 0.0113173311334, 0.0100959947002


def _no_scale(bn):
  # The TF networks' batch norm has a shift but no scale (slim's default):
  # the scale stays 1 and untrained.
  bn.weight.requires_grad_(False)
  return bn


def _bn(channels):
  # Keras momentum 0.9 == PyTorch momentum 0.1; epsilon as the TF networks.
  return _no_scale(nn.BatchNorm2d(channels, eps=1e-3, momentum=0.1))


def _float32(layer, x):
  """A network's output layer in float32 also under bf16 autocast, as Keras'
  mixed_bfloat16 policy keeps the logits and G's output image."""
  with torch.autocast("cpu", enabled=False):
    return layer(x.float())


def init_weights(module):
  """N(0, 0.02) kernels and zero biases, as the TF networks start."""
  for m in module.modules():
    if isinstance(m, (nn.Conv2d, nn.Linear)):
      nn.init.normal_(m.weight, std=0.02)
      if m.bias is not None:
        nn.init.zeros_(m.bias)
  return module


class Generator(nn.Module):
  """G(x_s, z) -> x_f, 64 filters x 6 residual blocks."""

  def __init__(self, filters=64, blocks=6):
    super().__init__()
    self.noise = nn.Linear(NOISE, SIZE * SIZE, bias=False)
    self.noise_bn = _no_scale(nn.BatchNorm1d(SIZE * SIZE, eps=1e-3,
                                             momentum=0.1))
    self.conv_in = nn.Conv2d(4, filters, 3, padding=1)
    self.blocks = nn.ModuleList(
        nn.Sequential(nn.Conv2d(filters, filters, 3, padding=1, bias=False),
                      _bn(filters), nn.ReLU(),
                      nn.Conv2d(filters, filters, 3, padding=1, bias=False),
                      _bn(filters))
        for _ in range(blocks))
    self.conv_out = nn.Conv2d(filters, 3, 1)

  def forward(self, image, z):
    noise = F.relu(self.noise_bn(self.noise(z))).view(-1, 1, SIZE, SIZE)
    x = F.relu(self.conv_in(torch.cat([image, noise], dim=1)))
    for block in self.blocks:
      x = x + block(x)
    return torch.tanh(_float32(self.conv_out, x))


class Discriminator(nn.Module):
  """D(x) -> logit, 64..512 filters down to 4x4."""

  def __init__(self, filters=(64, 128, 256, 512), keep_prob=0.9, noise=0.2):
    super().__init__()
    self.rate, self.noise = 1.0 - keep_prob, noise
    self.conv0 = nn.Conv2d(3, filters[0], 3, padding=1)
    self.convs = nn.ModuleList(
        nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False)
        for cin, cout in zip(filters[:-1], filters[1:]))
    self.bns = nn.ModuleList(_bn(c) for c in filters[1:])
    self.logit = nn.Linear(filters[-1] * 4 * 4, 1)

  def _regularise(self, x):
    x = F.dropout(x, self.rate, training=True)
    return x + self.noise * torch.randn_like(x)

  def forward(self, x):
    x = self._regularise(F.leaky_relu(self.conv0(x), 0.2))
    for conv, bn in zip(self.convs, self.bns):
      x = self._regularise(F.leaky_relu(bn(conv(x)), 0.2))
    return _float32(self.logit, torch.flatten(x, 1))


class Head(nn.Module):
  """T's shared part: 5x5 conv 48 + pool, dense 100, 100, classes."""

  def __init__(self):
    super().__init__()
    self.conv = nn.Conv2d(32, 48, 5, padding=2)
    self.fc3 = nn.Linear(48 * 8 * 8, 100)
    self.fc4 = nn.Linear(100, 100)
    self.logits = nn.Linear(100, CLASSES)

  def forward(self, x):
    x = torch.flatten(F.max_pool2d(F.relu(self.conv(x)), 2), 1)
    return _float32(self.logits, F.relu(self.fc4(F.relu(self.fc3(x)))))


class Classifier(nn.Module):
  """T: a private 5x5 conv 32 + pool per domain, then the shared head."""

  def __init__(self):
    super().__init__()
    self.head = Head()
    self.conv_source = nn.Conv2d(3, 32, 5, padding=2)
    self.conv_target = nn.Conv2d(3, 32, 5, padding=2)

  def forward(self, x, source):
    conv = self.conv_source if source else self.conv_target
    return self.head(F.max_pool2d(F.relu(conv(x)), 2))


def _apply(optimizer, params, grads):
  for p, g in zip(params, grads):
    norm = torch.linalg.vector_norm(g)
    p.grad = g * torch.clamp(5.0 / (norm + 1e-12), max=1.0)
  optimizer.step()


def make_step(precision):
  g, d, t = (init_weights(n) for n in (Generator(), Discriminator(),
                                       Classifier()))
  params = [[p for p in n.parameters() if p.requires_grad]
            for n in (g, d, t)]
  opts = [torch.optim.Adam(p, lr=1e-3, betas=(0.5, 0.999), eps=1e-7)
          for p in params]
  bce = nn.BCEWithLogitsLoss()

  def step(xs, ys, xt):
    z = torch.rand(BATCH, NOISE) * 2 - 1  # a fresh z every step, as in TF
    with torch.autocast("cpu", dtype=torch.bfloat16,
                        enabled=precision == "bfloat16"):
      adapted = g(xs, z)
      d_real, d_fake = d(xt), d(adapted)
      t_source, t_adapted = t(xs, source=True), t(adapted, source=False)
    d_real, d_fake = d_real.float(), d_fake.float()
    domain = (bce(d_real, torch.ones_like(d_real))
              + bce(d_fake, torch.zeros_like(d_fake)))
    style = bce(d_fake, torch.ones_like(d_fake))
    task_source = F.cross_entropy(t_source.float(), ys)
    task_adapted = F.cross_entropy(t_adapted.float(), ys)
    losses = [STYLE_W * style + TASK_IN_G_W * task_adapted,
              DOMAIN_W * domain, task_source + task_adapted]
    grads = [torch.autograd.grad(loss, p, retain_graph=i < 2)
             for i, (loss, p) in enumerate(zip(losses, params))]
    for opt, p, gr in zip(opts, params, grads):
      _apply(opt, p, gr)
    return losses[1].item()

  return step


def timing_parser(description: str) -> argparse.ArgumentParser:
  """The flags every PyTorch step benchmark here shares."""
  parser = argparse.ArgumentParser(description=description)
  parser.add_argument("--steps", type=int, default=20)
  parser.add_argument("--warmup", type=int, default=3)
  parser.add_argument("--threads", type=int, default=0,
                      help="torch.set_num_threads; 0 = PyTorch's default "
                      "(the physical cores).")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--json", default=None)
  return parser


def check_timing_args(parser, args) -> None:
  """Validates the shared flags and applies --threads and --seed."""
  if args.steps < 1 or args.warmup < 0:
    parser.error("--steps must be >= 1 and --warmup >= 0")
  if args.threads:
    torch.set_num_threads(args.threads)
  torch.manual_seed(args.seed)


def synthetic_batch(batch: int, size: int = SIZE):
  """Fixed source images, labels and target images; images in [-1, 1]."""
  xs = torch.rand(batch, 3, size, size) * 2 - 1
  xt = torch.rand(batch, 3, size, size) * 2 - 1
  ys = torch.randint(0, CLASSES, (batch,))
  return xs, ys, xt


def time_step(step, batch, args, **fields) -> dict:
  """Times `step(*batch)`: the first call alone, `args.warmup` untimed, then
  `args.steps` timed ones. Prints and returns the result (one JSON line;
  also written to `args.json`), with `fields` added."""
  start = time.perf_counter()
  step(*batch)
  first = time.perf_counter() - start
  for _ in range(args.warmup):
    step(*batch)
  times = []
  for _ in range(args.steps):
    start = time.perf_counter()
    step(*batch)
    times.append(time.perf_counter() - start)
  median = statistics.median(times)
  result = dict(framework="pytorch", torch=torch.__version__,
                python=platform.python_version(), **fields,
                threads=torch.get_num_threads(), median_s=median,
                images_per_s=len(batch[0]) / median, first_s=first,
                times_s=times)
  print(json.dumps(result), flush=True)
  if args.json:
    with open(args.json, "w") as f:
      json.dump(result, f, indent=1)
  return result


def main():
  parser = timing_parser(__doc__.split("\n")[0])
  parser.add_argument("--precision", choices=["float32", "bfloat16"],
                      default="float32")
  args = parser.parse_args()
  check_timing_args(parser, args)
  batch = synthetic_batch(BATCH)
  time_step(make_step(args.precision), batch, args, precision=args.precision)


if __name__ == "__main__":
  main()
