"""TRLearner's settings and their defaults, written once: :class:`TRConfig` (no torch).

The train command's options and their defaults, the pipeline's TRLearner keys, the analyses'
default scale and the report's label of the default runs all read this dataclass, so
``trlearner train --help`` and the pipeline need no torch for them. :mod:`.relation` uses it.

Example::

    >>> TRConfig().lam, TRConfig(heads=2).heads, defaults()["sampler"]
    (0.1, 2, 'diverse')
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

SAMPLERS = ("diverse", "random")
WEIGHTS = ("relu", "raw", "softmax")
ALIGNS = ("match", "index")
CLASS_REPRS = ("concat", "mean")


@dataclass
class TRConfig:
    """TRLearner settings. ``meta_data``: points per task (regression) or per class
    (classification); ``None`` means ``ceil(shots / 2)``."""

    lam: float = 0.1
    heads: int = 4
    meta_data: int | None = None
    sampler: str = "diverse"
    weights: str = "relu"
    align: str = "match"
    class_repr: str = "concat"
    learn_omega: bool = True

    def __post_init__(self):
        for name, allowed in (("sampler", SAMPLERS), ("weights", WEIGHTS), ("align", ALIGNS),
                              ("class_repr", CLASS_REPRS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"TRLearner {name}={getattr(self, name)!r} is not one of {allowed}")
        if self.heads < 1:
            raise ValueError(f"TRLearner heads must be >= 1 (got {self.heads})")
        if self.lam < 0:
            raise ValueError(f"TRLearner lam must be >= 0 (got {self.lam})")

    def to_dict(self) -> dict:
        return asdict(self)


def defaults() -> dict:
    """Every field of :class:`TRConfig` with its default, in field order."""
    return {f.name: f.default for f in fields(TRConfig)}
