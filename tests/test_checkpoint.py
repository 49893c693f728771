import json
import os
import pickle

import pytest
import torch
from safetensors.torch import save_file

from dcgan.checkpoint import atomic_write_bytes, checkpoint_from_bytes, load_checkpoint, resolve_checkpoint, save_checkpoint
from dcgan.errors import CheckpointError
from dcgan.models import Discriminator, Generator, ModelConfig

from conftest import TINY

pytestmark = pytest.mark.kernels  # depends on the CPU's kernels: make test-avx2 reruns it (pyproject's markers)


@pytest.fixture
def saved(tmp_path):
    cfg = ModelConfig(**TINY)
    G, D = Generator(cfg), Discriminator(cfg)
    opt = torch.optim.Adam(G.parameters(), lr=1e-3)
    G(torch.randn(4, 8)).mean().backward()
    opt.step()
    path = save_checkpoint(
        tmp_path / "ck.safetensors", cfg, G, D, optimizers={"opt_g": opt}, extra={"fixed_noise": torch.randn(3, 8)}, state={"step": 7, "note": "x"}
    )
    return path, cfg, G, D, opt


def test_round_trip(saved):
    path, cfg, G, D, opt = saved
    ck = load_checkpoint(path)
    assert ck.model_config == cfg and ck.step == 7 and ck.state["note"] == "x"
    G2 = ck.build_generator()
    for (k, a), (_, b) in zip(G.state_dict().items(), G2.state_dict().items()):
        assert torch.equal(a, b), k
    D2 = ck.build_discriminator()
    for a, b in zip(D.state_dict().values(), D2.state_dict().values()):
        assert torch.equal(a, b)
    opt2 = torch.optim.Adam(Generator(cfg).parameters(), lr=5.0)
    ck.load_optimizer("opt_g", opt2)
    assert opt2.param_groups[0]["lr"] == 1e-3 and opt2.param_groups[0]["betas"] == (0.9, 0.999)
    s1, s2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    for pid in s1:
        for key in s1[pid]:
            assert torch.equal(s1[pid][key], s2[pid][key])


def test_run_directory_resolves_to_latest(tmp_path, saved):
    path = saved[0]
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    os.replace(path, run / "checkpoints" / "latest.safetensors")
    assert resolve_checkpoint(run) == run / "checkpoints" / "latest.safetensors"
    with pytest.raises(CheckpointError, match="no checkpoint"):
        resolve_checkpoint(tmp_path)


def test_truncated_checkpoint_is_refused(saved, tmp_path):
    data = saved[0].read_bytes()
    for cut in (0, 7, len(data) // 2, len(data) - 1):
        bad = tmp_path / f"cut{cut}.safetensors"
        bad.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="not a readable dcgan checkpoint"):
            load_checkpoint(bad)


def test_bytes_in_memory_load_like_the_file(saved):
    data = saved[0].read_bytes()
    from_file, from_bytes = load_checkpoint(saved[0]), checkpoint_from_bytes(data)
    assert from_bytes.model_config == from_file.model_config and from_bytes.state == from_file.state
    assert from_bytes.tensors.keys() == from_file.tensors.keys()
    assert all(torch.equal(from_bytes.tensors[k], from_file.tensors[k]) for k in from_file.tensors)
    for cut in (0, 7, len(data) // 2, len(data) - 1):
        with pytest.raises(CheckpointError, match="not a readable dcgan checkpoint"):
            checkpoint_from_bytes(data[:cut])
    foreign = b"\x02\x00\x00\x00\x00\x00\x00\x00{}"
    with pytest.raises(CheckpointError, match="not a dcgan checkpoint"):
        checkpoint_from_bytes(foreign)


def test_foreign_files_are_refused(tmp_path):
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, other)
    with pytest.raises(CheckpointError, match="not a dcgan checkpoint"):
        load_checkpoint(other)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(CheckpointError):
        load_checkpoint(text)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.safetensors")


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_pickle_payload_is_never_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"G": _Payload()}))
    with pytest.raises(CheckpointError):
        load_checkpoint(evil)
    assert not (tmp_path / "PWNED").exists()


def test_weights_that_do_not_fit_the_config(saved, tmp_path):
    path = saved[0]
    ck = load_checkpoint(path)
    # Rewrite the header's config so that the stored weights no longer fit it.
    from safetensors import safe_open
    from safetensors.torch import save as st_save

    with safe_open(str(path), "pt") as f:
        meta = dict(f.metadata())
    meta["model_config"] = json.dumps({**json.loads(meta["model_config"]), "width": 16})
    bad = tmp_path / "mismatch.safetensors"
    bad.write_bytes(st_save(ck.tensors, metadata=meta))
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(bad).build_generator()


def test_atomic_write_keeps_old_file_when_the_write_fails(tmp_path, monkeypatch):
    target = tmp_path / "file.bin"
    atomic_write_bytes(target, b"old")

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"new" * 1000)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]  # no temporary left behind
