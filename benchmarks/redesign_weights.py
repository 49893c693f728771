"""By hand: does a 20-step digits run still give the weights recorded before the training-core redesign?

This was a test until it met a CPU it was not recorded on (issue 23). Floating-point results depend on
the kernels oneDNN picks, which differ between CPUs that torch reports alike (an AMD EPYC with
AVX512-BF16 and an Intel Xeon with AMX are both "AVX512"), so a recorded hash holds on its own machine
only. The test suite now checks what holds on any machine (two runs with one seed agree, resume equals an
uninterrupted run, a 0.1.0 checkpoint still loads); this script keeps the old record for a maintainer who
wants to know whether a change moved the default run by even one bit on the recording machine.

The record: sha256 of G's state dict after `dcgan train --steps 20 --seed 0 --precision P` with every
other default (digits, 32x32, batch 128), made with commit 21e35de on 2 cores of an AMD EPYC with
AVX512-BF16 (2026-11).

    .venv/bin/python benchmarks/redesign_weights.py
"""

from __future__ import annotations

import hashlib

import torch

from dcgan.training import Trainer, cpu_has_bf16

RECORDED_G_SHA256 = {  # (torch CPU capability, threads, precision) on the recording machine
    ("AVX512", 2, "fp32"): "ea3dc38bc4882cdb91bdcc4eae8215e5affb2c64499494fba214a36fa4ff079e",
    ("AVX512", 2, "bf16"): "93ce6376c37c66c29358d641adc49d908ebf327d9900cdc928b5babf45035e59",
}


def g_sha256(G: torch.nn.Module) -> str:
    """sha256 over G's state dict, each tensor named as in the checkpoint file."""
    digest = hashlib.sha256()
    for name, value in sorted(G.state_dict().items()):
        digest.update(f"G.{name}".encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def main() -> None:
    for precision in ("fp32", "bf16"):
        if precision == "bf16" and not cpu_has_bf16():
            print("bf16: skipped, no native bf16 on this CPU")
            continue
        trainer = Trainer.from_options(data="digits", steps=20, seed=0, precision=precision, device="cpu", progress=False)
        trainer.train()
        key = (torch.backends.cpu.get_cpu_capability(), torch.get_num_threads(), precision)
        found, recorded = g_sha256(trainer.G), RECORDED_G_SHA256.get(key)
        verdict = "no record for this key" if recorded is None else ("same" if found == recorded else "DIFFERENT")
        print(f"{precision}: {found}  {verdict} (key {key}; a match means something only on the recording machine)")


if __name__ == "__main__":
    main()
