"""Composing corruptions in order (Mishra et al., robustness protocol, §2.3: "Sometimes both the
artifacts could manifest in the image").

Seeding: ``Compose(steps)(img, seed=s)`` runs step ``i`` with ``derive_seed(s, i)``, i.e.
``np.random.SeedSequence(s).spawn(n)[i]``'s first 64-bit word. Deriving (rather than reusing ``s``
or using ``s + i``) keeps two stochastic steps independent: two salt-and-pepper steps with the same
seed would hit the same pixels, and ``s + i`` would make step 1 of seed ``s`` replay step 0 of seed
``s + 1``. So ``Compose([a, b])(x, s) == b(a(x, derive_seed(s, 0)), derive_seed(s, 1))``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from engine.corrupt.errors import CorruptionError
from engine.corrupt.ops import Image, check_image, check_seed
from engine.corrupt.registry import check_level, get_corruption

__all__ = ["Compose", "Step", "derive_seed"]

# Tiny image every Step is tried on when built, so a bad value (jpeg quality 0, an even ksize)
# fails when the pipeline is configured, not half-way through a benchmark.
_PROBE = np.full((16, 16, 3), 128, np.uint8)
_PROBE.setflags(write=False)


def derive_seed(seed: int, index: int) -> int:
    """The seed step ``index`` of a pipeline run with ``seed`` receives (see the module docstring)."""
    seed = check_seed(seed, None)
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise CorruptionError(None, f"step index must be a non-negative integer, got {index!r}")
    state = np.random.SeedSequence(seed, spawn_key=(index,)).generate_state(1, np.uint64)
    return int(state[0])


@dataclass(frozen=True)
class Step:
    """One configured corruption: a name plus a severity level and/or explicit parameters."""

    name: str
    level: int | None = None
    params: Mapping[str, float] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        corruption = get_corruption(self.name)
        if self.level is not None:
            check_level(self.level, self.name)
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))
        corruption(_PROBE, self.level, 0, **self.params)

    def __call__(self, img: Image, seed: int = 0) -> Image:
        return get_corruption(self.name)(img, self.level, seed, **self.params)

    def to_config(self) -> dict[str, Any]:
        """Plain dict for YAML run configs; ``Step.from_config`` inverts it."""
        return {"name": self.name, "level": self.level, "params": dict(self.params)}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Step:
        unknown = sorted(set(config) - {"name", "level", "params"})
        if unknown or "name" not in config:
            reason = f"a step needs 'name' and optionally 'level', 'params'; got keys {sorted(config)}"
            raise CorruptionError(config.get("name"), reason)
        return cls(config["name"], config.get("level"), dict(config.get("params") or {}))


@dataclass(frozen=True)
class Compose:
    """Several corruptions applied in order, each with its own seed derived from the call's seed."""

    steps: tuple[Step, ...]

    def __init__(self, steps: Sequence[Step]) -> None:
        for step in steps:
            if not isinstance(step, Step):
                raise CorruptionError(None, f"Compose takes Step objects, got {type(step).__name__}")
        object.__setattr__(self, "steps", tuple(steps))

    def __call__(self, img: Image, seed: int = 0) -> Image:
        seed = check_seed(seed, None)
        out = check_image(img, "compose").copy() if not self.steps else img
        for index, step in enumerate(self.steps):
            out = step(out, derive_seed(seed, index))
        return out

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    def to_config(self) -> list[dict[str, Any]]:
        return [step.to_config() for step in self.steps]

    @classmethod
    def from_config(cls, config: Sequence[Mapping[str, Any]]) -> Compose:
        return cls([Step.from_config(item) for item in config])
