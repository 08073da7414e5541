"""The contracts every registry entry keeps, as checks the registry-walking tests and the extension tests
share (import as ``from contracts import ...``; pytest puts tests/ on the path).

A model (docs/CONTRACTS.md, models): ``model(x)`` -> logits ``[B, K]``; ``model(x, is_feat=True)`` ->
``(feats, logits)``, ``feats`` ending with the pooled embedding ``[B, C]`` that the classifier reads;
``feat_dims`` the channel width of each feature; its state dict rebuilds an equal network.
A data set (datasets): a `DataBundle` whose items are ``(image, target, index)`` (or what its ``fields``
name), batches that collate, a validation part drawn from the training indices, and a declared recipe.
"""
from typing import Callable

import torch
from torch.utils.data import DataLoader


def check_model_contract(build: Callable[..., torch.nn.Module], num_classes: int = 7, size: int = 32,
                         in_channels: int = 3) -> None:
    """Forward on a tiny batch, ``feat_dims``, the embedding feeding the classifier, and a state-dict
    round trip (a second build loads it strictly and gives the same outputs)."""
    torch.manual_seed(0)
    kwargs = {"in_channels": in_channels} if in_channels != 3 else {}
    model = build(num_classes=num_classes, **kwargs).eval()
    x = torch.randn(2, in_channels, size, size)
    with torch.no_grad():
        feats, logits = model(x, is_feat=True)
        plain = model(x)
    assert logits.shape == (2, num_classes) and torch.isfinite(logits).all()
    assert torch.equal(plain, logits)
    dims = list(model.feat_dims)
    assert all(isinstance(c, int) for c in dims)
    assert [f.shape[1] for f in feats] == dims
    assert feats[-1].shape == (2, dims[-1])  # the pooled embedding [B, C]
    assert all(f.dim() == 4 for f in feats[:-1])  # stage outputs are maps
    with torch.device("meta"):  # the second build only needs its structure: no memory, no initialisation
        again = build(num_classes=num_classes, **kwargs).eval()
    again.load_state_dict(model.state_dict(), strict=True, assign=True)
    with torch.no_grad():
        assert torch.equal(again(x), logits)


def check_bundle_contract(bundle, name: str, recipes) -> None:
    """Items, one collated batch of the training set, the test set, and the declared facts of data set
    ``name`` (``recipes``: the recipe names the engine knows)."""
    from datasets import dataset_info

    info = dataset_info(name)
    assert info.recipe in recipes, f"data set {name} declares an unknown recipe {info.recipe!r}"
    assert bundle.name == name and bundle.num_classes >= 2 and bundle.in_channels >= 1
    assert tuple(bundle.fields[:3]) == ("image", "target", "index")
    for ds in (bundle.train, bundle.test):
        item = ds[len(ds) - 1]
        assert len(item) == len(bundle.fields)
        image, target, index = item[:3]
        assert image.dtype == torch.float32 and image.shape == (bundle.in_channels, bundle.image_size,
                                                                  bundle.image_size)
        assert isinstance(target, int) and 0 <= target < bundle.num_classes
        assert isinstance(index, int) and index >= 0
    batch = next(iter(DataLoader(bundle.train, batch_size=min(4, len(bundle.train)), shuffle=False)))
    images, targets, indices = batch[:3]
    assert images.shape[1:] == (bundle.in_channels, bundle.image_size, bundle.image_size)
    assert targets.dtype == torch.int64 and indices.dtype == torch.int64
    assert len(set(indices.tolist())) == len(indices)  # each item reports its own index
    if info.on_device:  # --data_on_device can hold it: the device view serves the same batch shapes
        from datasets.device_data import DeviceView
        from datasets.keyed import KeyedItems

        view = DeviceView(KeyedItems(bundle.train, 0), torch.device("cpu"))
        images, targets, indices = view.batch([(1, 0), (1, 1)])[:3]
        assert images.shape[1:] == (bundle.in_channels, bundle.image_size, bundle.image_size)
        assert targets.tolist() == [bundle.train[i][1] for i in (0, 1)]
    if bundle.val is not None:  # held out from the training items: disjoint indices
        train_idx = {bundle.train[i][2] for i in range(len(bundle.train))}
        val_idx = {bundle.val[i][2] for i in range(len(bundle.val))}
        assert val_idx and not train_idx & val_idx
