import pytest
import torch
from torch import nn

from dcgan.errors import ConfigError
from dcgan.models import DOWNSAMPLE_BLOCKS, SUPPORTED_SIZES, UPSAMPLE_BLOCKS, Discriminator, Generator, ModelConfig, format_summary, model_summary


@pytest.mark.parametrize("size", SUPPORTED_SIZES)
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_every_size_and_channel_count(size, channels):
    cfg = ModelConfig(image_size=size, channels=channels, z_dim=16, width=4, max_channels=64)
    G, D = Generator(cfg), Discriminator(cfg)
    z = torch.randn(2, 16)
    x = G(z)
    assert x.shape == (2, channels, size, size)
    assert x.min() >= -1 and x.max() <= 1  # tanh output
    logits = D(x)
    assert logits.shape == (2,)
    # D's feature maps halve the size down to the base map (4, or 7 for 28x28).
    feats = D.features(x)
    assert feats[-1].shape[-1] == cfg.base_size
    assert len(feats) == cfg.num_resamplings


@pytest.mark.parametrize("g_block", list(UPSAMPLE_BLOCKS))
@pytest.mark.parametrize("d_block", list(DOWNSAMPLE_BLOCKS))
@pytest.mark.parametrize("size", [28, 32])
def test_alternative_blocks(g_block, d_block, size):
    cfg = ModelConfig(image_size=size, channels=3, z_dim=8, width=4, g_block=g_block, d_block=d_block)
    G, D = Generator(cfg), Discriminator(cfg)
    x = G(torch.randn(3, 8))
    assert x.shape == (3, 3, size, size)
    assert D(x).shape == (3,)
    has_pool = any(isinstance(m, nn.MaxPool2d) for m in D.modules())
    has_upsample = any(isinstance(m, nn.Upsample) for m in G.modules())
    has_convT_up = sum(isinstance(m, nn.ConvTranspose2d) for m in G.modules()) > 1
    assert has_pool == (d_block == "maxpool")
    assert has_upsample == (g_block == "nearest")
    assert has_convT_up == (g_block == "transposed")


def test_paper_guidelines_default_64():
    cfg = ModelConfig(image_size=64, channels=3)
    G, D = Generator(cfg), Discriminator(cfg)
    # No pooling and no fully connected layers anywhere.
    for model in (G, D):
        assert not any(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d, nn.Linear)) for m in model.modules())
    # G: BN after every block but the output one; ReLU inside, tanh at the output.
    for block in G.blocks[:-1]:
        assert isinstance(block[1], nn.BatchNorm2d) and isinstance(block[2], nn.ReLU)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in G.blocks[-1].modules())
    assert isinstance(G.blocks[-1][-1], nn.Tanh)
    # D: no BN on the input block, BN on the others, LeakyReLU(0.2) everywhere.
    assert not any(isinstance(m, nn.BatchNorm2d) for m in D.blocks[0].modules())
    for block in D.blocks[1:]:
        assert isinstance(block[1], nn.BatchNorm2d)
    for m in D.modules():
        if isinstance(m, nn.LeakyReLU):
            assert m.negative_slope == 0.2
    # PyTorch example widths: 512 at 4x4 for 64x64 (ngf=64).
    assert G.blocks[0][0].out_channels == 512
    assert [b[0].out_channels for b in D.blocks] == [64, 128, 256, 512]


def test_paper_width_128_gives_1024_projection():
    G = Generator(ModelConfig(image_size=64, width=128))
    assert G.blocks[0][0].out_channels == 1024


def test_weight_init_statistics():
    torch.manual_seed(0)
    G = Generator(ModelConfig(image_size=64))
    conv_w = torch.cat([m.weight.flatten() for m in G.modules() if isinstance(m, nn.ConvTranspose2d)])
    bn_w = torch.cat([m.weight.flatten() for m in G.modules() if isinstance(m, nn.BatchNorm2d)])
    assert abs(conv_w.mean().item()) < 1e-3
    assert conv_w.std().item() == pytest.approx(0.02, rel=0.02)
    assert bn_w.mean().item() == pytest.approx(1.0, abs=5e-3)
    assert bn_w.std().item() == pytest.approx(0.02, rel=0.1)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(image_size=48), "unsupported image size"),
        (dict(image_size=512), "unsupported image size"),
        (dict(channels=2), "channel"),
        (dict(z_dim=0), "z-dim"),
        (dict(z_dim=10**15), "z-dim must be a whole number from 1 to 4096"),
        (dict(width=True), "width"),
        (dict(prior="cauchy"), "prior"),
        (dict(g_block="pixelshuffle"), "G block"),
        (dict(d_block="avgpool"), "D block"),
    ],
)
def test_bad_config_is_a_config_error(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ModelConfig(**kwargs)


@pytest.mark.parametrize("g_block,d_block", [("transposed", "strided"), ("nearest", "maxpool")])
def test_summary_macs_match_flop_counter(g_block, d_block):
    from torch.utils.flop_counter import FlopCounterMode

    cfg = ModelConfig(image_size=32, channels=3, z_dim=10, width=8, g_block=g_block, d_block=d_block)
    for model, example in ((Generator(cfg), torch.randn(1, 10)), (Discriminator(cfg), torch.randn(1, 3, 32, 32))):
        rows = model_summary(model, example)
        model.eval()
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(example)
        conv_flops = sum(v for k, v in counter.get_flop_counts()["Global"].items() if "conv" in str(k))
        assert sum(r["macs"] for r in rows) == conv_flops // 2
        assert sum(r["params"] for r in rows) == sum(p.numel() for p in model.parameters())
        text = format_summary("model", rows)
        assert "total" in text and f"{sum(p.numel() for p in model.parameters()):,}" in text
