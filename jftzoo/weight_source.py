"""Where an encoder's weights came from: the one type encoders, the registry and the loaders share.

Its own module, importing none of them, so `encoders.base` needs neither `weights` nor `registry`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WeightSource:
    """Where an encoder's weights came from; shown wherever results are shown."""

    kind: str  # "path" | "packaged" | "cache" | "hub" | "random"
    location: str

    @property
    def pretrained(self) -> bool:
        return self.kind != "random"

    def __str__(self) -> str:
        return "random (not pretrained)" if self.kind == "random" else f"{self.kind}: {self.location}"


RANDOM = WeightSource("random", "")
