"""A toy distillation method written the way a newcomer adds one: this file alone (one registry line,
the decorator); `tests/test_method_plugin.py` loads it and trains it through train_student.py.

``loss_toy = beta * mean(|z_s - z_t| ** toy_power)`` on the logits.
"""
from distiller.options import Option
from distiller.registry import register
from distiller.teacher_student import TeacherStudent


@register("toy", "toy_alias")
class Toy(TeacherStudent):
    term = "loss_toy"
    options = (Option("toy_power", 2.0, "exponent of the logit distance", flags=("--toy_power", "--tp")),)
    defaults = dict(gamma=1.0, alpha=0.0, beta=0.5)
    defaults_source = "made up for the test"

    @classmethod
    def run_tag(cls, cfg):
        """The shared weights and the toy's own option, so runs with another --toy_power get another folder."""
        label, params = super().run_tag(cfg)
        return label, f"{params}_tp-{float(cfg.toy_power)}"

    def __init__(self, student, teacher=None, toy_power=2.0, **kwargs):
        super().__init__(student, teacher, **kwargs)
        self.toy_power = float(toy_power)

    def method_loss(self, feats_s, logit_s, feats_t, logit_t, target, **batch):
        return (logit_s - logit_t).abs().pow(self.toy_power).mean()
