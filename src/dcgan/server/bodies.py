"""The request bodies of the explorer's JSON API, as pydantic models (`dcgan serve`).

Types are strict (a seed of 1.5 or "3" is refused, not rounded or parsed); the bounds that
`dcgan serve` lets the user set are checked by the Explorer. This module imports pydantic, so
`server/app.py` imports it only inside `create_app`: the rest of `dcgan` imports without FastAPI.
"""

# No `from __future__ import annotations`: pydantic and FastAPI read these annotations as real types.
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, model_validator

from ..sampling import MAX_SEED

__all__ = ["LatentRef", "SheetRequest", "WalkRequest", "ArithmeticRequest", "SlideRequest", "ClassesRequest"]

Seed = Annotated[StrictInt, Field(ge=0, le=MAX_SEED)]
Number = Annotated[StrictFloat, Field(allow_inf_nan=False)]
# "class" is a Python keyword: the field is class_, spelled "class" in JSON. Its range is the Explorer's to check.
Class = Annotated[StrictInt | None, Field(alias="class")]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LatentRef(Body):
    """A latent point: a sample of a grid {"seed", "n", "index"}, or {"z": [...]}; with its class on a conditional model."""

    seed: Seed | None = None
    n: StrictInt | None = None
    index: StrictInt | None = None
    z: Annotated[list[Number], Field(max_length=4096)] | None = None
    class_: Class = None  # the class the point was drawn in (a conditional model)

    @model_validator(mode="after")
    def _one_form(self):
        cell = [v is not None for v in (self.seed, self.n, self.index)]
        if (self.z is not None) == any(cell) or (any(cell) and not all(cell)):
            raise ValueError('a latent point is either {"seed", "n", "index"} (a sample of a grid) or {"z": [...]}')
        return self


Group = Annotated[list[LatentRef], Field(max_length=1024)]


class SheetRequest(Body):
    seed: Seed
    n: StrictInt = 64
    class_: Class = None


class WalkRequest(Body):
    a: LatentRef
    b: LatentRef
    steps: StrictInt = 10
    method: Literal["spherical", "linear"] = "spherical"
    class_: Class = None
    end_class: StrictInt | None = None  # the class input moves from "class" to it along the walk


class ArithmeticRequest(Body):
    a: Group
    b: Group
    c: Group
    noise: Number = 0.25
    noise_seed: Seed = 0
    class_: Class = None


class SlideRequest(Body):
    base: LatentRef
    amounts: Annotated[list[Number], Field(max_length=4096)]
    class_: Class = None


class ClassesRequest(Body):
    base: LatentRef
