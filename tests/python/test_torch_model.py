#!/usr/bin/python3
"""spt_torch.SparseTransformer against spt itself and the independent reference.

A tiny model trained by `spt train` (the built binary; fixed pattern, interleaved, and
strided merged) loads with SparseTransformer.from_checkpoint and gives `spt eval`'s loss
on the validation split (relative 1e-5: fp32 sums of a few hundred terms); its loss and
gradients agree with tools/reference/model.py run in float64; save_checkpoint writes
weights that `spt eval` loads to the same loss.

    SPT_TORCH_PACKAGE=build/python /usr/bin/python3 tests/python/test_torch_model.py --spt build/spt --repo .
"""
import json
import os
import random
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_test_setup import setup  # noqa: E402

ARGS = setup(__doc__.splitlines()[0])

import torch  # noqa: E402
import spt_torch  # noqa: E402
from model import SparseTransformer as Reference  # noqa: E402  (the independent reference)

CTX = 32
LOSS_RTOL = 1e-5
GRAD_RTOL = 1e-4  # fp32 model against float64 reference, per tensor, relative to its largest entry


def spt(*args):
    run = subprocess.run([ARGS.spt, *args], capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    if run.returncode != 0:
        raise RuntimeError(f"spt {' '.join(args)} exited {run.returncode}: {run.stderr.strip()[-2000:]}")
    return run.stdout


def eval_bits(checkpoint, data):
    out = spt("eval", "--checkpoint", checkpoint, "--data", data, "--data-format", "bytes", "--split", "valid",
              "--json")
    return json.loads(out.strip().splitlines()[-1])["bits_per_dim"]


def valid_windows(data):
    """The validation split of a bytes file (enwik8's: [0.9 n, 0.95 n)) in windows of CTX; the
    test's file makes it a whole number of windows, so each token is scored once as spt does."""
    with open(data, "rb") as f:
        raw = f.read()
    n = len(raw)
    split = torch.tensor(list(raw[n * 9 // 10:n * 19 // 20]), dtype=torch.long)
    assert split.numel() % CTX == 0, split.numel()
    return split.view(-1, CTX)


class CheckpointRoundTrip(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.data = os.path.join(cls.tmp.name, "data.txt")
        rng = random.Random(0)
        words = ["alpha", "beta", "gamma", "delta", "sparse", "attention", "model", "layer"]
        text = " ".join(rng.choice(words) for _ in range(1000))
        with open(cls.data, "w") as f:
            f.write(text[:20 * CTX * 4])  # validation split: 4 windows

    def train(self, name, *flags):
        run = os.path.join(self.tmp.name, name)
        spt("train", "--layers", "2", "--width", "32", "--heads", "2", "--ctx", str(CTX), "--batch", "4", "--steps",
            "40", "--warmup", "2", "--lr", "1e-2", "--eval-batches", "1", "--log-every", "1000", "--data", self.data,
            "--out", run, *flags)
        return os.path.join(run, "checkpoint")

    def check_run(self, name, *flags):
        checkpoint = self.train(name, *flags)
        tokens = valid_windows(self.data)
        model = spt_torch.SparseTransformer.from_checkpoint(checkpoint).eval()
        spt_bits = eval_bits(checkpoint, self.data)
        with torch.no_grad():
            bits = float(model.bits_per_dim(tokens))
        self.assertLess(spt_bits, 7.5, "training did not move the weights: the comparison would be weak")
        self.assertLessEqual(abs(bits - spt_bits), LOSS_RTOL * spt_bits, f"{name}: {bits} vs spt eval {spt_bits}")

        reference = Reference(model.cfg)
        reference.load_state_dict(model.state_dict(), strict=True)
        reference = reference.double()
        ref_loss = reference.loss(tokens)
        ref_loss.backward()
        loss = model.loss(tokens)
        loss.backward()
        self.assertLessEqual(abs(float(loss) - float(ref_loss)), LOSS_RTOL * float(ref_loss))
        ref_params = dict(reference.named_parameters())
        for pname, p in model.named_parameters():
            ref = ref_params[pname].grad
            err = float((p.grad.double() - ref).abs().max())
            self.assertLessEqual(err, GRAD_RTOL * float(ref.abs().max()) + 1e-8, f"{name}: gradient of {pname}")

        exported = os.path.join(self.tmp.name, name + "-exported")
        model.save_checkpoint(exported)
        self.assertEqual(sorted(os.listdir(exported)), ["model.safetensors"])
        again = spt_torch.SparseTransformer.from_checkpoint(exported)
        for pname, t in model.state_dict().items():
            self.assertTrue(torch.equal(t, again.state_dict()[pname]), pname)
        self.assertEqual(eval_bits(exported, self.data), spt_bits, "spt eval of the weights PyTorch saved")
        sample = os.path.join(self.tmp.name, name + "-sample.txt")
        spt("sample", "--checkpoint", exported, "--count", "1", "--length", "8", "--out", sample)
        self.assertTrue(os.path.getsize(sample) > 0, "spt sample of the weights PyTorch saved")
        print(f"{name}: PyTorch {bits:.9f} bits, spt eval {spt_bits:.9f}")

    def test_fixed_interleaved(self):
        self.check_run("fixed", "--pattern", "fixed", "--stride", "8", "--summary", "2", "--mode", "interleaved")

    def test_strided_merged(self):
        self.check_run("strided", "--pattern", "strided", "--stride", "8", "--mode", "merged")

    def test_missing_or_foreign_file_refused(self):
        with self.assertRaises(FileNotFoundError):
            spt_torch.SparseTransformer.from_checkpoint(os.path.join(self.tmp.name, "nothing"))
        foreign = os.path.join(self.tmp.name, "foreign.safetensors")
        from spt_torch.safetensors_io import save_safetensors
        save_safetensors(foreign, {"w": torch.zeros(2)}, {"format": "pt"})
        with self.assertRaises(ValueError) as caught:
            spt_torch.SparseTransformer.from_checkpoint(foreign)
        self.assertIn("model_config", str(caught.exception))


if __name__ == "__main__":
    torch.set_num_threads(1)
    unittest.main(verbosity=2)
