"""ASE state: Eq. 3 online update, Eq. 2 naive estimate, lookup, checkpoint round trip."""

import pytest
import torch

from extract.adaptfocus.saliency import ActionSaliency


def _ase():
    # video "a" has classes 0 and 2, video "b" class 1; K = 3
    return ActionSaliency([("a", [2, 0]), ("b", [1])], num_classes=3)


def test_layout_starts_at_zero():
    ase = _ase()
    assert ase.state.shape == (2, 3) and ase.state.abs().sum() == 0
    assert ase.index() == {("a", 0): 0, ("a", 2): 1, ("b", 1): 2}


def test_online_update_eq3_by_hand():
    ase = _ase()
    probs = torch.tensor([[0.3, 0.9, 0.1], [0.2, 0.6, 0.4]])
    changed = ase.update_online(torch.tensor([0, 1]), torch.tensor([5.0, 7.0]), probs)
    # every p > 0 beats the initial a = 0; class 1 of "a" is not a label -> ignored
    assert changed == 3
    assert ase.state[0].tolist() == [5.0, 5.0, 7.0]
    assert ase.state[1].tolist() == pytest.approx([0.3, 0.1, 0.6])
    # a later clip of "a": class 0 lower (no move), class 2 higher (moves to t = 9)
    ase.update_online(torch.tensor([0]), torch.tensor([9.0]), torch.tensor([[0.2, 0.0, 0.5]]))
    assert ase.state[0, :2].tolist() == [5.0, 9.0]
    assert ase.state[1, :2].tolist() == pytest.approx([0.3, 0.5])
    # equal score does not move the position (strict >)
    ase.update_online(torch.tensor([0]), torch.tensor([11.0]), torch.tensor([[0.3, 0.0, 0.0]]))
    assert ase.state[0, 0].item() == 5.0


def test_two_clips_of_one_video_in_a_batch_apply_in_order():
    ase = _ase()
    ase.update_online(torch.tensor([1, 1]), torch.tensor([1.0, 2.0]),
                      torch.tensor([[0, 0.5, 0], [0, 0.4, 0]]))
    assert ase.state[:, 2].tolist() == pytest.approx([1.0, 0.5])


def test_lookup_and_naive_estimate():
    ase = _ase()
    ase.set_naive(0, torch.tensor([1.0, 2.0, 3.0]),
                  torch.tensor([[0.1, 0.0, 0.7], [0.8, 0.0, 0.2], [0.3, 1.0, 0.1]]))
    position, spike, valid = ase.lookup(torch.tensor([0, 1]))
    assert valid.tolist() == [[True, False, True], [False, True, False]]
    assert position[0].tolist() == [2.0, 0.0, 1.0]
    assert spike[0].tolist() == pytest.approx([0.8, 0.0, 0.7])
    ase.decay(0.5)
    assert ase.lookup(torch.tensor([0]))[1][0].tolist() == pytest.approx([0.4, 0.0, 0.35])


def test_success_ratio():
    ase = _ase()
    ase.state[0] = torch.tensor([5.0, 50.0, 3.0])
    intervals = {("a", 0): [(4.0, 6.0)], ("a", 2): [(0.0, 10.0), (60, 70)], ("b", 1): [(3, 4)]}
    assert ase.success_ratio(intervals) == pytest.approx(2 / 3)


def test_state_dict_round_trip_through_a_file(tmp_path):
    ase = _ase()
    ase.update_online(torch.tensor([0]), torch.tensor([4.0]), torch.tensor([[0.5, 0.1, 0.2]]))
    torch.save({"ase": ase.state_dict()}, tmp_path / "ck.pt")
    fresh = _ase()
    fresh.load_state_dict(torch.load(tmp_path / "ck.pt")["ase"])
    assert torch.equal(fresh.state, ase.state)
    other = ActionSaliency([("a", [0]), ("b", [1])], num_classes=3)
    with pytest.raises(ValueError, match="other training videos"):
        other.load_state_dict(ase.state_dict())


def test_batched_update_equals_clip_after_clip():
    """Random batches with repeated videos and ties: same state as Eq. 3 applied one by one."""
    generator = torch.Generator().manual_seed(0)
    videos = [(f"v{i}", [k for k in range(4) if (i + k) % 2 == 0]) for i in range(5)]
    batched, reference = ActionSaliency(videos, 4), ActionSaliency(videos, 4)
    for _ in range(20):
        index = torch.randint(0, 5, (6,), generator=generator)
        times = torch.randint(0, 50, (6,), generator=generator).double()
        probs = torch.randint(0, 5, (6, 4), generator=generator).double() / 4  # many ties
        batched.update_online(index, times, probs)
        for row in range(6):
            for k in range(4):
                col = int(reference.column_of[index[row], k])
                if col < 0:
                    continue
                if probs[row, k] > reference.state[1, col]:
                    reference.state[0, col] = times[row]
                    reference.state[1, col] = probs[row, k]
    assert torch.equal(batched.state, reference.state)
