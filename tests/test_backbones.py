import torch
import torch.nn.functional as F

from trlearner.engine.backbones import batch_norm, conv4, make_backbone, mlp, resnet12


def test_mlp_is_the_paper_regression_net():
    bb = mlp([1, 40, 40], 1)
    p = bb.init(torch.Generator().manual_seed(0))
    assert {k: tuple(v.shape) for k, v in p.items()} == {
        "fc1.w": (40, 1), "fc1.b": (40,), "fc2.w": (40, 40), "fc2.b": (40,),
        "head.w": (1, 40), "head.b": (1,)}
    x = torch.randn(7, 1)
    manual = F.relu(F.relu(x @ p["fc1.w"].T + p["fc1.b"]) @ p["fc2.w"].T + p["fc2.b"]) @ p["head.w"].T + p["head.b"]
    torch.testing.assert_close(bb(p, x), manual)


def test_init_is_deterministic_given_the_generator():
    bb = conv4((1, 28, 28), 5, filters=8)
    a = bb.init(torch.Generator().manual_seed(3))
    b = bb.init(torch.Generator().manual_seed(3))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_batch_norm_matches_torch_training_mode():
    h = torch.randn(6, 4, 5, 5, dtype=torch.float64)
    w, b = torch.rand(4, dtype=torch.float64), torch.randn(4, dtype=torch.float64)
    ref = F.batch_norm(h, None, None, w, b, training=True, eps=1e-5)
    torch.testing.assert_close(batch_norm(h, w, b), ref)


def test_conv4_and_resnet12_shapes():
    c4 = conv4((1, 28, 28), 5, filters=8)
    p = c4.init(torch.Generator().manual_seed(0))
    assert c4(p, torch.rand(3, 1, 28, 28)).shape == (3, 5)
    assert c4.features(p, torch.rand(3, 1, 28, 28)).shape == (3, c4.feature_dim)
    r12 = resnet12((3, 16, 16), 5, widths=(4, 4, 6, 8))
    q = r12.init(torch.Generator().manual_seed(0))
    assert r12(q, torch.rand(2, 3, 16, 16)).shape == (2, 5)


def test_identity_transforms_leave_outputs_unchanged():
    for bb, x in ((mlp([1, 40, 40], 1), torch.randn(5, 1)),
                  (conv4((1, 28, 28), 5, filters=8), torch.rand(4, 1, 28, 28))):
        p = bb.init(torch.Generator().manual_seed(0))
        with_t = dict(p, **{f"{l}.T": torch.eye(w) for l, w in zip(bb.layers, bb.layer_width)})
        torch.testing.assert_close(bb(with_t, x), bb(p, x))
        scaled = dict(with_t, **{"head.T": 2 * torch.eye(bb.layer_width[-1])})
        torch.testing.assert_close(bb(scaled, x), 2 * bb(p, x))


def test_unknown_backbone_is_rejected_with_the_choices():
    import pytest
    with pytest.raises(ValueError, match="mlp, conv4, resnet12"):
        make_backbone("vgg", (1,), 1)
