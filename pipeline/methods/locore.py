"""LocoRE (paper Alg. 2): greedy decoding whose decode-step attention in layers [l0, l1] gains
gamma = 1 + beta on the generated tokens within w_s of the query (see pipeline.attention)."""

from __future__ import annotations

from pipeline.decoding import greedy_select
from pipeline.methods import METHODS
from pipeline.methods._base import SelectorMethod

METHODS.register("locore")(lambda: SelectorMethod(lambda params: greedy_select, locore=True))
