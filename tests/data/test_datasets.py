import pytest

from cxrtool.data.datasets import EpochSampler


@pytest.mark.parametrize("n", [1, 2, 7, 16])
@pytest.mark.parametrize("world", [1, 2, 3])
def test_sampler_shares_cover_every_item_padded_like_distributed_sampler(n, world):
    shares = []
    for rank in range(world):
        sampler = EpochSampler(n, seed=3, shuffle=True, rank=rank, world=world)
        sampler.set_epoch(2)
        items = list(sampler)
        assert len(sampler) == len(items) == -(-n // world)  # equal shares, padded
        assert all(epoch == 2 for epoch, _ in items)
        shares.append([index for _, index in items])
    assert set().union(*shares) == set(range(n))
    resumed = EpochSampler(n, seed=3, shuffle=True, rank=0, world=world)
    resumed.set_epoch(2, start=1)
    assert [i for _, i in resumed] == shares[0][1:]  # a mid-epoch resume skips what was consumed
