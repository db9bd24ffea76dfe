"""Plain decoding: greedy (argmax) and ancestral sampling at a temperature, optionally nucleus
(top-p, Holtzman et al. 2020) truncated."""

from __future__ import annotations

from pipeline.decoding import greedy_select, make_sample_select
from pipeline.methods import METHODS
from pipeline.methods._base import SelectorMethod

METHODS.register("greedy")(lambda: SelectorMethod(lambda params: greedy_select))
METHODS.register("sample")(lambda: SelectorMethod(lambda params: make_sample_select(params.temperature, params.top_p)))
