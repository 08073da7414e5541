"""Stage 2 and stage 4 read a teacher layer the same way: for the same batch and layer, the clouds
stage 2 stores (`pcd.sources.TeacherCloudSource`) equal the teacher clouds of stage 4's topology term."""
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from distiller.topkd import TopologyTerm
from models import model_dict
from models.common import layer_embedding
from pcd.sources import TeacherCloudSource


class Images(Dataset):
    """Random 3x16x16 images, items ``(image, target, index)`` like the data sets."""

    def __init__(self, n=40):
        self.x = torch.randn(n, 3, 16, 16, generator=torch.Generator().manual_seed(0))

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], i % 10, i


class Spy(nn.Module):
    """An image module that records the clouds it is given and returns one value per cloud."""

    input_dim = None

    def forward(self, clouds):
        self.seen = clouds.detach().clone()
        return clouds.mean(dim=(1, 2)).unsqueeze(1)


def test_layer_embedding_pools_maps_and_keeps_vectors():
    maps = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    vec = torch.randn(2, 5)
    got = layer_embedding([maps, vec], 0)
    assert torch.equal(got, torch.tensor([[1.5, 5.5, 9.5], [13.5, 17.5, 21.5]]))  # hand-computed means
    assert layer_embedding([maps, vec], -1) is vec


@pytest.mark.parametrize("layer", [-1, 2])  # the FC input, and a 4-D stage map (pooled)
def test_stage2_clouds_equal_stage4_teacher_clouds(layer):
    torch.manual_seed(0)
    teacher = model_dict["resnet8"](num_classes=10).eval()
    student = model_dict["resnet8"](num_classes=10).eval()
    data = Images()
    source = TeacherCloudSource(teacher, data, batch=8, passes=1, layer=layer, seed=3)
    stage2 = next(iter(source.clouds(0, 1)))[0]  # cloud 0: [8, C]
    # stage 4 on the same batch: the images of cloud 0 through the topology term's teacher side
    x = torch.stack([source.images[key][0] for key in source.schedule.batch(0)])
    spy = Spy()
    shapes = [tuple(f.shape) for f in teacher(x[:2], is_feat=True)[0]]  # the student is a resnet8 too
    term = TopologyTerm(spy, shapes, shapes, 1.0, tda_layer_t=layer)
    with torch.no_grad():
        feats_t, _ = teacher(x, is_feat=True)
        feats_s, _ = student(x, is_feat=True)
        term(feats_s, feats_t)
    stage4 = spy.seen[0].numpy()  # first cloud = the teacher's
    assert stage4.shape == stage2.shape
    np.testing.assert_allclose(stage4, stage2, rtol=1e-6, atol=1e-6)
