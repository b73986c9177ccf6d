import pytest
import torch

from sentinel.diffusion.unet import UNet, UNetConfig


@pytest.mark.parametrize("attention", [True, False])
def test_predicts_noise_of_input_shape_and_learns(attention):
    torch.manual_seed(0)
    net = UNet(UNetConfig(in_channels=4, base_channels=8, attention=attention))
    x, t = torch.randn(3, 4, 16, 8), torch.tensor([0, 10, 999])
    assert net(x, t).shape == x.shape
    feats = net.encode(x, 5)
    assert [f.shape[-2:] for f in feats] == [(16, 8), (8, 4), (4, 2), (4, 2)]  # 3 scales + bottleneck
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    target = torch.randn_like(x)
    first = None
    for _ in range(30):
        loss = (net(x, t) - target).pow(2).mean()
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


def test_attention_sits_at_the_coarse_scale():
    net = UNet(UNetConfig(base_channels=8))
    kinds = [type(level.attn).__name__ for level in net.down]
    assert kinds == ["Identity", "Identity", "SelfAttention"]
