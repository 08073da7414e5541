"""The contracts every registry entry keeps, as checks the registry-walking tests and the extension tests
share (import as ``from contracts import ...``; pytest puts tests/ on the path).

A model (docs/CONTRACTS.md, models): ``model(x)`` -> logits ``[B, K]``; ``model(x, is_feat=True)`` ->
``(feats, logits)``, ``feats`` ending with the pooled embedding ``[B, C]`` that the classifier reads;
``feat_dims`` the channel width of each feature; its state dict rebuilds an equal network.
A data set (datasets): a `DataBundle` whose items are ``(image, target, index)`` (or what its ``fields``
name), batches that collate, a validation part drawn from the training indices, and a declared recipe.
A distillation method (distiller, docs/ADDING.md): built by its own ``example``, one training step returns the
student's logits and finite scalar terms (its own ``term`` among them) whose gradients reach the student and
its extra modules, never a frozen network (the teacher stays frozen and in eval mode).
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
    check_preact(model, x, feats, logits)
    with torch.device("meta"):  # the second build only needs its structure: no memory, no initialisation
        again = build(num_classes=num_classes, **kwargs).eval()
    again.load_state_dict(model.state_dict(), strict=True, assign=True)
    with torch.no_grad():
        assert torch.equal(again(x), logits)


def check_preact(model, x, feats, logits) -> None:
    """``model(x, is_feat=True, preact=True)``: the same logits and shapes; each map that ``preact_points`` names
    is its pre-activation form (negative somewhere, where the activation makes it non-negative), the others are
    the plain maps; a named BN has the map's width."""
    points = model.preact_points()
    assert len(points) == len(feats) - 1
    with torch.no_grad():
        pre, pre_logits = model(x, is_feat=True, preact=True)
    assert torch.equal(pre_logits, logits) and [p.shape for p in pre] == [f.shape for f in feats]
    assert torch.equal(pre[-1], feats[-1])
    for (act, bn), p, f in zip(points, pre, feats):
        if act is None:
            assert torch.equal(p, f)
        else:
            assert (p < 0).any() and not torch.equal(p, f)
            assert torch.equal(act(p.clone()), f) or isinstance(bn, torch.nn.BatchNorm2d)
        assert bn is None or (isinstance(bn, torch.nn.BatchNorm2d) and bn.num_features == f.shape[1])


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


def check_method_contract(method) -> None:
    """One training step of the method class ``method`` built by ``method.example`` on two tiny networks of
    different widths (a projector is needed) and an 8-image batch of 3 classes."""
    from helpers import TinyNet

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    batch = {"image": torch.randn(8, 3, 8, 8, generator=g), "target": torch.randint(0, 3, (8,), generator=g),
             "index": torch.arange(8)}
    distiller, batch = method.example(TinyNet((4, 4, 8)), TinyNet((6, 6, 12)), batch)
    assert set(method.batch_fields) <= set(batch)
    distiller.train()
    if hasattr(distiller, "set_epoch"):
        distiller.set_epoch(5)
    logits, losses = distiller(**batch)
    assert logits.shape == (8, 3)
    assert losses and all(v.dim() == 0 and torch.isfinite(v) for v in losses.values()), losses
    assert getattr(method, "term", None) in set(losses) | {None}  # its own term, at its default weight
    frozen = distiller.frozen_networks()
    assert distiller.teacher is None or "teacher" in frozen
    assert all(not net.training for net in frozen.values())
    sum(losses.values()).backward()
    frozen_ids = {id(p) for net in frozen.values() for p in net.parameters()}
    assert all(p.grad is None and not p.requires_grad for net in frozen.values() for p in net.parameters())
    assert distiller.student.fc.weight.grad is not None
    ids = {id(p) for p in distiller.learnable_parameters()}
    assert ids >= {id(p) for p in distiller.student.parameters()} and not ids & frozen_ids
    for module in distiller.extra_modules():
        assert all(id(p) in ids for p in module.parameters())
