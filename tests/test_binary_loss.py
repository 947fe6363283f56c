"""Training from binary answers: the "no" constraint, the "yes" presence loss, and a tiny model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from alseg.binary_loss import (
    ABSENT_LOGIT,
    absent_class_loss,
    absent_logit_mask,
    batch_answers,
    binary_answer_loss,
    mask_absent_logits,
    pooled_presence,
    presence_loss,
)
from alseg.units.binary import answer_matrix


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_answer_matrix_and_batch_answers():
    m = answer_matrix(4, 3, np.array([0, 0, 2]), np.array([1, 2, 0]), np.array([True, False, False]))
    assert m.dtype == np.int8
    assert m[0, 1] == 1 and m[0, 2] == -1 and m[2, 0] == -1 and np.count_nonzero(m) == 3
    absent, present = batch_answers(m, np.array([2, 0]))
    assert absent.tolist() == [[True, False, False], [False, False, True]]
    assert present.tolist() == [[False, False, False], [False, True, False]]
    with pytest.raises(ValueError, match="answered both"):
        answer_matrix(4, 3, np.array([1, 1]), np.array([2, 2]), np.array([True, False]))
    with pytest.raises(ValueError, match="classes outside"):
        answer_matrix(4, 3, np.array([1]), np.array([3]), np.array([True]))
    with pytest.raises(ValueError, match="images outside"):
        answer_matrix(4, 3, np.array([4]), np.array([0]), np.array([True]))


def test_masked_softmax_is_exactly_zero_and_blocks_gradient():
    torch.manual_seed(0)
    logits = (10 * torch.randn(2, 4, 5, 6)).requires_grad_()
    absent = torch.tensor([[False, True, False, True], [False, False, False, False]])
    masked = mask_absent_logits(logits, absent)
    p = torch.softmax(masked, dim=1)
    assert (p[0, 1] == 0).all() and (p[0, 3] == 0).all()
    torch.testing.assert_close(p.sum(dim=1), torch.ones(2, 5, 6))
    torch.testing.assert_close(p[1], torch.softmax(logits[1], dim=0))  # untouched sample
    assert absent_logit_mask(absent, 5, 6).shape == (2, 4, 5, 6)
    (p[:, 0].sum()).backward()
    assert (logits.grad[0, 1] == 0).all() and (logits.grad[0, 0] != 0).any()
    # fp16 logits (AMP): still exactly zero, and a conflicting pixel label gives a finite loss
    p16 = torch.softmax(mask_absent_logits(logits.detach().half(), absent), dim=1)
    assert (p16[0, 1] == 0).all()
    ce = nn.functional.cross_entropy(masked[:1], torch.ones(1, 5, 6, dtype=torch.long))
    assert math.isfinite(ce.item()) and ce.item() >= -ABSENT_LOGIT / 2
    with pytest.raises(ValueError, match="every class"):
        mask_absent_logits(logits, torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool tensor of shape"):
        mask_absent_logits(logits, absent[:, :3])


def test_absent_class_loss_is_minus_log_of_allowed_mass():
    torch.manual_seed(1)
    logits = torch.randn(3, 4, 2, 3)
    absent = torch.tensor([[False, True, True, False], [False, False, False, False], [True, False, False, False]])
    p = torch.softmax(logits, dim=1)
    removed = torch.stack([p[0, 1] + p[0, 2], p[2, 0]])  # samples with a "no"
    expected = (-torch.log1p(-removed)).mean()
    torch.testing.assert_close(absent_class_loss(logits, absent), expected)
    none = torch.zeros(3, 4, dtype=torch.bool)
    assert float(absent_class_loss(logits, none)) == 0.0
    # padding pixels are excluded
    mask = torch.ones(3, 2, 3, dtype=torch.bool)
    mask[:, :, 2] = False
    expected_masked = (-torch.log1p(-removed[:, :, :2])).mean()
    torch.testing.assert_close(absent_class_loss(logits, absent, mask), expected_masked)


def test_presence_loss_is_lse_pooling():
    torch.manual_seed(2)
    logits = torch.randn(2, 3, 4, 4)
    present = torch.tensor([[True, False, False], [False, False, True]])
    r = 5.0
    p = torch.softmax(logits, dim=1).double().numpy()
    q = [np.mean(p[0, 0] ** r) ** (1 / r), np.mean(p[1, 2] ** r) ** (1 / r)]
    assert float(presence_loss(logits, present, r=r)) == pytest.approx(-np.mean(np.log(q)), rel=1e-5)
    pooled = pooled_presence(logits, r).numpy()
    assert pooled[0, 0] == pytest.approx(q[0], rel=1e-5)
    # r moves the pooling from the geometric mean (r -> 0) through the mean (r = 1) to the max
    assert pooled_presence(logits, 1e-3)[0, 0] == pytest.approx(np.exp(np.log(p[0, 0]).mean()), rel=5e-3)
    assert pooled_presence(logits, 1.0)[0, 0] == pytest.approx(p[0, 0].mean(), rel=1e-5)
    assert pooled_presence(logits, 500.0)[0, 0] == pytest.approx(p[0, 0].max(), rel=2e-2)
    assert float(presence_loss(logits, torch.zeros(2, 3, dtype=torch.bool))) == 0.0
    with pytest.raises(ValueError, match="r must be"):
        presence_loss(logits, present, r=0.0)


# ---- a tiny model learns the answers -------------------------------------------------------------------

COLOURS = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # class 0, 1, 2


def labelled_set(size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Four densely labelled images, each half one class and half another, in pure class colours."""
    g = torch.Generator().manual_seed(0)
    masks = []
    for a, b in [(0, 2), (1, 2), (0, 1), (2, 0)]:
        m = torch.full((size, size), a)
        m[:, size // 2 :] = b
        masks.append(m)
    y = torch.stack(masks)
    x = COLOURS[y].permute(0, 3, 1, 2) + 0.05 * torch.randn(4, 3, size, size, generator=g)
    return x, y


def pool_image(colour: torch.Tensor, size: int = 8) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return colour[None, :, None, None].expand(1, 3, size, size) + 0.05 * torch.randn(1, 3, size, size, generator=g)


def train_tiny(q: torch.Tensor, absent: torch.Tensor, present: torch.Tensor, steps: int = 80) -> nn.Module:
    """Cross-entropy on the labelled set plus the answer losses on the pool image ``q``."""
    x, y = labelled_set()
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                        nn.Conv2d(16, 3, 1))
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = nn.functional.cross_entropy(net(x), y) + binary_answer_loss(net(q), absent, present)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return net


def test_no_answer_is_learned_and_holds_at_inference(one_thread):
    """A pool image halfway between the colours of class 1 and class 2: without answers the model gives
    class 2 a large share; after "class 2 is not in this image" its probability there is near zero at
    inference (no mask), while the labelled set stays fitted."""
    q = pool_image(0.5 * COLOURS[1] + 0.5 * COLOURS[2])
    no_answers = torch.zeros(1, 3, dtype=torch.bool)
    absent = torch.tensor([[False, False, True]])
    x, y = labelled_set()
    control = train_tiny(q, no_answers, no_answers)
    treated = train_tiny(q, absent, no_answers)
    with torch.no_grad():
        p_control = torch.softmax(control(q), dim=1)[0, 2].mean()
        p_treated = torch.softmax(treated(q), dim=1)[0, 2]
        accuracy = (treated(x).argmax(dim=1) == y).float().mean()
    assert p_control > 0.2
    assert p_treated.max() < 0.01
    assert accuracy > 0.95


def test_yes_answer_raises_presence(one_thread):
    """A pool image halfway between class 0 and class 2: "class 2 is here" raises its pooled presence;
    with "class 0 is not here" as well, class 2 takes the image."""
    q = pool_image(0.5 * COLOURS[0] + 0.5 * COLOURS[2])
    none = torch.zeros(1, 3, dtype=torch.bool)
    yes2 = torch.tensor([[False, False, True]])
    no0 = torch.tensor([[True, False, False]])
    models = [train_tiny(q, none, none), train_tiny(q, none, yes2), train_tiny(q, no0, yes2)]
    with torch.no_grad():
        q_control, q_yes = (pooled_presence(m(q))[0, 2] for m in models[:2])
        both = torch.softmax(models[2](q), dim=1)[0]
    assert q_yes > q_control + 0.1
    assert (both.argmax(dim=0) == 2).float().mean() > 0.9 and both[0].max() < 0.05
