"""Text data sets for the LSTM text VAE (papers 001, He et al. 2019, and 004, Kim et al. 2018).

Format (every source)
---------------------
`TextData.train / valid / test` are dicts of numpy arrays:

* `tokens`: int32 [N, T], each row `[BOS, w1, ..., wn, EOS, PAD, ..., PAD]`;
* `length`: int32 [N], `n + 1`, the number of predicted tokens (w1..wn and EOS).

T = (longest kept n) + 2 and is the same for every split of a data set. The decoder reads
`tokens[:, :-1]` and predicts `tokens[:, 1:]` under `mask(arrays)` (= `arange(T - 1) <
length[:, None]`); the encoder reads `tokens[:, :length + 1]` (BOS, the words, EOS). Ids 0..3
are `SPECIALS` = PAD, BOS, EOS, UNK; `vocab[i]` is the word of id i.

Sources (`load(cfg)`, `cfg.source`)
-----------------------------------
* `'embedded'` (default; no files): `embedded_sentences`, a small deterministic corpus from a
  tiny grammar. Every sentence has a topic (animals, cooking, sports, music: its subjects,
  verbs, objects, place nouns and half of its adjectives) and a mood (positive or negative:
  the other adjectives and the adverb), so a sentence-level latent variable predicts most
  content words. Subject `[det] [adj] noun` (or, in 5% of sentences, one of 120 names, rare
  words so that some valid / test words are unseen in train), verb, object `[det] [adj]{0,2}
  noun`, optional adverb, optional `prep [det] place`: 3 to 12 words, words inside each list
  drawn with Zipf-like weights. 2000 sentences, split 80/10/10 in generation order (i.i.d.).
* `'ptb'`: the Mikolov Penn Treebank in `ptb_dir` (default `../shared/data/ptb` beside the
  repository, see its SOURCE.md): `ptb.{train,valid,test}.txt`, one sentence per line,
  whitespace-split, lower-cased, no `<eos>` in the files.
* `'oracle_001'`, `'oracle_004'`: sequences sampled from the papers' random-LSTM oracles
  (below), generated in numpy; `oracle_001()` / `oracle_004()` also return the oracle's
  parameters and latents (`OracleParams`) and `oracle_log_prob` scores sequences under it.

Corpora from words (`from_sentences`: embedded, PTB)
----------------------------------------------------
In this order, per split: empty sentences (PTB: blank lines) are dropped and counted; `limit`
keeps the first `limit` train sentences and `test_limit` the first `test_limit` valid and test
sentences (0 = all); sentences longer than `max_length` words (0 = no cap, the default, so T =
the longest sentence of all splits + 2; 82 + 2 = 84 on PTB) are dropped (`overlong='drop'`,
the default, as vae-lagging-encoder's `data/text_data.py:MonoTextData` does, lines 93-101,
which also drops empty lines) or cut to their first `max_length`
words (`'truncate'`); counts of both per split. The vocabulary comes from the kept train
sentences only: words by frequency, ties alphabetical, `vocab_size` (the size including the 4
specials, 0 = every train word) keeps the most frequent. The corpus's literal `<unk>` maps to
UNK (counted as `literal_unk`); any other word not in the vocabulary (absent from train or cut
by `vocab_size`) maps to UNK too (counted as `oov`). The literal words `<pad>`, `<s>`, `</s>`
are refused (ValueError naming file and line, or sentence and word). Word and UNK counts refer
to the kept (encoded) sentences. `TextData.counts[split]` holds the counts, `notes` says them.
PTB (SOURCE.md): 42,068 / 3,370 / 3,761 sentences, no blank lines, 887,521 train words (45,020
`<unk>`), 9,998 distinct train words besides `<unk>`, so the full vocabulary has 10,002 ids.

Oracle of paper 001 (He et al. 2019, App B.1)
---------------------------------------------
The reference generator is `synthetic-data/{generate,lm_lstm}.py` of GitHub `jxhe/
vae-lagging-encoder`, last version at commit 6c014aa4cfa2bab068028959a661845a0c6e170a
(2018-08-01; both files were deleted in c3c85777 "clean", so they are not at HEAD). Found there:

* generate.py:13-28: seed 19950927, ni = 100 (embedding), nz = 2, nh = 100, vocab 1000,
  nsamples 20000, length 10; 53-54: every parameter U(-1, 1), the z->vocabulary weights
  U(-5, 5) (it was U(-3, 3) in the previous commit 34b8db6); 61-63: batches of 16 sampled
  independently.
* lm_lstm.py:25-30: `nn.Embedding(1000, 100)` and `nn.LSTM(input_size=ni + nz)`: z is
  concatenated to the word embedding at EVERY input, besides the initial state and the output
  (the paper does not say this); 33: `trans_linear = Linear(nz, nh, bias=False)`; 36-37:
  `out_linear1 = Linear(nh, V, bias=False)`, `out_linear2 = Linear(nz, V, bias=False)`, logits
  = out_linear1(h_t) + out_linear2(z) (no output bias); 40-48: the mixture, equal weights, unit
  scales; 52-57: all parameters U(-1, 1) (the embedding and both LSTM biases b_ih and b_hh
  too), then out_linear2 U(-5, 5); 95-96: the FIRST word is uniform over the vocabulary,
  independent of z; 107-108: c0 = trans_linear(z), h0 = tanh(c0); 112-122: the other
  length - 1 = 9 words are sampled (`torch.multinomial(exp(logits))`, i.e. from the softmax,
  not argmax), each fed back as the next input.

Here: x1 ~ U{0..999}; gates = [emb(x_t), z] @ w_x + h_{t-1} @ w_h + b with b = b_ih + b_hh
(the sum of two U(-1, 1) draws, as PyTorch's two biases), split (i, f, g, o) in PyTorch's
order; c_t = sigmoid(f) c_{t-1} + sigmoid(i) tanh(g), h_t = sigmoid(o) tanh(c_t);
x_{t+1} ~ softmax(h_t @ w_out_h + z @ w_out_z) (b_out = 0), c0 = z @ w_zc (b_zc = 0), h0 =
tanh(c0). 20,000 sequences of 10 words, split 16,000 / 2,000 / 2,000 in generation order (the
reference's own split lives in its downloadable data, not in code). Oracle word k is the word
"k", token id k + 4; sequences never contain specials. Our draws are numpy's (PCG64), not
torch's, so the data are the same distribution, not the same sequences.

Oracle of paper 004 (Kim et al. 2018, SA-VAE, Sec 5.1)
------------------------------------------------------
`harvardnlp/sa-vae` has no synthetic-data generator in any commit (13 commits, checked with
git; only Yahoo / Omniglot code), and the shared text of paper 004 is the talk slides, which
give z1, z2 ~ N(0, 1), h_t = LSTM([x_t, z1, z2], h_{t-1}), p(x_{t+1} | x_<=t, z) ∝ exp(W h_t).
Paper 001 (App B.1) says "we follow the synthetic data generation procedure in Kim et al.
(2018)", so
where the slides are silent this oracle follows 001's reference generator, and the sizes follow
the SA-VAE paper's Sec 5.1 as we recall it (NOT verified here; the paper is not among the
shared texts): LSTM with 100 hidden units and 100-dimensional inputs, vocabulary 1000, 5 time
steps, 5000 training sequences. Choices: x1 uniform (as 001); z concatenated to every input
(slides); h0 = c0 = 0 (the slides give z no other path; w_zc = b_zc = 0); logits = h_t @ W
(no bias, no z path: w_out_z = b_out = 0); every parameter U(-1, 1), b = b_ih + b_hh; 7000
sequences split 5000 / 1000 / 1000 (validation and test sizes are our choice).

Exact likelihood
----------------
`oracle_log_prob(params, tokens, z)` = log p(x | z) of the oracle's words under teacher forcing,
float64 [N]: log(1 / V) for the uniform first word plus the softmax log-probabilities of the
rest (the EOS of our format is not part of the oracle). Parameters are stored float32 (the
float32 values ARE the oracle); `oracle_log_prob` computes in float64 on them, so it is exact up
to float64 rounding, and a float32 JAX decoder given them agrees to float32 rounding. Sampling
(`oracle_sample`) computes in float32, twice as fast on CPU (20,000 sequences in 3-5 s on the
2-core dev box): each word is drawn by the inverse CDF of one uniform from probabilities that
differ from the exact ones by float32 rounding only. All uniforms are drawn up front, so the data do
not depend on the chunking; the same seed gives the same data on one machine (another BLAS
could, very rarely, flip a draw that falls within rounding of a CDF boundary).
"""

from __future__ import annotations

import collections
import dataclasses
import os
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np
from scipy import special

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")
UNK_WORD = SPECIALS[UNK]
RESERVED_WORDS = frozenset(SPECIALS[:UNK])  # literal <pad>, <s>, </s> are refused in input
SPLITS = ("train", "valid", "test")
SOURCES = ("embedded", "ptb", "oracle_001", "oracle_004")
PTB_FILES = {s: f"ptb.{s}.txt" for s in SPLITS}
DEFAULT_PTB_DIR = os.path.normpath(
  os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "data", "ptb"
  )
)
# seeds of the generators: np.random.default_rng([seed, salt]), one salt per source
_SALTS = {"embedded": 0, "oracle_001": 1, "oracle_004": 4}


@dataclasses.dataclass(frozen=True, eq=False)
class TextData:
  """A tokenised text data set (the format in the module docstring)."""

  train: dict[str, np.ndarray]  # {'tokens': int32 [N, T], 'length': int32 [N]}
  test: dict[str, np.ndarray]
  vocab: tuple[str, ...]  # id -> word; ids 0..3 are SPECIALS
  source: str  # a path, or 'synthetic(...)' / 'embedded(...)'
  notes: str  # what loading did, with counts
  valid: dict[str, np.ndarray] | None = None
  # split -> {'read', 'empty', 'limited', 'dropped', 'truncated', 'kept', 'words',
  # 'literal_unk', 'oov'} (sentences read, empty ones dropped, cut by limit, dropped / truncated
  # by max_length, kept; words, literal <unk> and out-of-vocabulary words of the kept ones)
  counts: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)

  @property
  def vocab_size(self) -> int:
    return len(self.vocab)

  @property
  def max_tokens(self) -> int:
    """T, the width of `tokens` (the same in every split)."""
    return int(self.train["tokens"].shape[1])

  def splits(self) -> dict[str, dict[str, np.ndarray]]:
    """{'train', 'valid' (when present), 'test'} -> arrays."""
    out = {"train": self.train}
    if self.valid is not None:
      out["valid"] = self.valid
    out["test"] = self.test
    return out


# ------------------------------------------------------------------------------ helpers --


def mask(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
  """bool [N, T - 1]: which targets `tokens[:, 1:]` are predicted (w1..wn and EOS)."""
  tokens, length = np.asarray(arrays["tokens"]), np.asarray(arrays["length"])
  return np.arange(tokens.shape[1] - 1)[None, :] < length[:, None]


def decode_tokens(vocab: Sequence[str], tokens_row: Sequence[int]) -> list[str]:
  """The words of one row: after a leading BOS, up to (not including) the first EOS or PAD."""
  row = [int(t) for t in np.asarray(tokens_row).reshape(-1)]
  if row and row[0] == BOS:
    row = row[1:]
  words = []
  for t in row:
    if t in (EOS, PAD):
      break
    words.append(vocab[t])
  return words


def _index(vocab: Sequence[str] | Mapping[str, int]) -> dict[str, int]:
  """word -> id for encoding: the words of `vocab` and '<unk>' -> UNK (never PAD, BOS, EOS)."""
  if isinstance(vocab, Mapping):
    index = dict(vocab)
  else:
    if tuple(vocab[: len(SPECIALS)]) != SPECIALS:
      raise ValueError(f"vocab must start with {SPECIALS}, got {tuple(vocab[: len(SPECIALS)])}")
    index = {w: i for i, w in enumerate(vocab)}
  for w in RESERVED_WORDS:
    index.pop(w, None)
  index[UNK_WORD] = UNK
  return index


def _check_words(sentences: Sequence[Sequence[str]], where: str) -> None:
  for i, s in enumerate(sentences):
    for j, w in enumerate(s):
      if w in RESERVED_WORDS:
        raise ValueError(f"{where}: sentence {i}, word {j + 1}: reserved token {w!r}")


def _encode(
  sentences: Sequence[Sequence[str]], index: Mapping[str, int], max_tokens: int
) -> tuple[dict[str, np.ndarray], int, int]:
  """(arrays, literal <unk> count, out-of-vocabulary count); sentences fit max_tokens - 2."""
  n = len(sentences)
  tokens = np.full((n, max_tokens), PAD, np.int32)
  length = np.zeros(n, np.int32)
  literal = oov = 0
  for i, s in enumerate(sentences):
    ids = [index.get(w, UNK) for w in s]
    k = len(ids)
    tokens[i, 0] = BOS
    tokens[i, 1 : k + 1] = ids
    tokens[i, k + 1] = EOS
    length[i] = k + 1
    unk = ids.count(UNK)
    if unk:
      lit = list(s).count(UNK_WORD)
      literal += lit
      oov += unk - lit
  return {"tokens": tokens, "length": length}, literal, oov


def encode_sentences(
  sentences: Sequence[Sequence[str]],
  vocab: Sequence[str] | Mapping[str, int],
  max_tokens: int | None = None,
) -> dict[str, np.ndarray]:
  """Token rows of word lists: {'tokens': int32 [N, T], 'length': int32 [N]}.

  Args:
    sentences: lists of words; words not in `vocab`, and the literal '<unk>', become UNK.
    vocab: id -> word (starting with SPECIALS), or a word -> id mapping.
    max_tokens: T; None = the longest sentence + 2.

  Raises:
    ValueError: a sentence longer than max_tokens - 2 words, or holding a literal '<pad>',
      '<s>' or '</s>' (the message names the sentence and word).
  """
  _check_words(sentences, "encode_sentences")
  longest = max((len(s) for s in sentences), default=0)
  if max_tokens is None:
    max_tokens = longest + 2
  if longest + 2 > max_tokens:
    i = next(i for i, s in enumerate(sentences) if len(s) + 2 > max_tokens)
    raise ValueError(
      f"sentence {i} has {len(sentences[i])} words, more than max_tokens - 2 = {max_tokens - 2}"
    )
  return _encode(sentences, _index(vocab), max_tokens)[0]


# ----------------------------------------------------------------- corpora from words --


def build_vocab(sentences: Sequence[Sequence[str]], vocab_size: int = 0) -> tuple[str, ...]:
  """SPECIALS + the words of `sentences` by frequency (ties alphabetical), '<unk>' excluded.

  Args:
    sentences: the training sentences.
    vocab_size: the total size including the 4 specials (0 = every word).
  """
  if vocab_size and vocab_size <= len(SPECIALS):
    raise ValueError(f"vocab_size must be 0 or more than {len(SPECIALS)}, got {vocab_size}")
  freq = collections.Counter(w for s in sentences for w in s)
  for w in SPECIALS:
    freq.pop(w, None)
  words = sorted(freq, key=lambda w: (-freq[w], w))
  if vocab_size:
    words = words[: vocab_size - len(SPECIALS)]
  return SPECIALS + tuple(words)


def from_sentences(
  splits: Mapping[str, Sequence[Sequence[str]]],
  *,
  vocab_size: int = 0,
  max_length: int = 0,
  overlong: str = "drop",
  limit: int = 0,
  test_limit: int = 0,
  source: str = "sentences",
  notes: str = "",
) -> TextData:
  """A TextData of word lists (the steps in the module docstring, "Corpora from words").

  Args:
    splits: 'train', 'test' and optionally 'valid' -> lists of words.
    vocab_size: vocabulary size including the 4 specials (0 = every train word).
    max_length: the most words a sentence may have (0 = no cap).
    overlong: 'drop' or 'truncate' the sentences over max_length.
    limit: keep the first `limit` train sentences (0 = all).
    test_limit: keep the first `test_limit` valid and test sentences (0 = all).
    source: TextData.source.
    notes: the start of TextData.notes (what was read); the counts are appended.

  Raises:
    ValueError: a bad argument, no train sentence left, or a literal '<pad>', '<s>', '</s>'.
  """
  if overlong not in ("drop", "truncate"):
    raise ValueError(f"overlong must be 'drop' or 'truncate', got {overlong!r}")
  if max_length < 0 or limit < 0 or test_limit < 0:
    raise ValueError(
      f"max_length, limit, test_limit must be >= 0, got {max_length}, {limit}, {test_limit}"
    )
  missing = [s for s in ("train", "test") if s not in splits]
  if missing or set(splits) - set(SPLITS):
    raise ValueError(f"splits must be train, test and optionally valid, got {sorted(splits)}")
  kept, counts = {}, {}
  for name in (s for s in SPLITS if s in splits):
    sents = [list(s) for s in splits[name]]
    _check_words(sents, f"{name} split")
    c = {"read": len(sents)}
    sents = [s for s in sents if s]
    c["empty"] = c["read"] - len(sents)
    n_limit = limit if name == "train" else test_limit
    c["limited"] = max(0, len(sents) - n_limit) if n_limit else 0
    if n_limit:
      sents = sents[:n_limit]
    over = [len(s) > max_length for s in sents] if max_length else [False] * len(sents)
    if overlong == "drop":
      sents = [s for s, o in zip(sents, over) if not o]
      c["dropped"], c["truncated"] = sum(over), 0
    else:
      sents = [s[:max_length] if o else s for s, o in zip(sents, over)]
      c["dropped"], c["truncated"] = 0, sum(over)
    c["kept"] = len(sents)
    c["words"] = sum(len(s) for s in sents)
    kept[name], counts[name] = sents, c
  if not kept["train"]:
    raise ValueError("no train sentence left (empty input, or all dropped by max_length)")
  vocab = build_vocab(kept["train"], vocab_size)
  index = _index(vocab)
  longest = max(len(s) for sents in kept.values() for s in sents)
  arrays = {}
  for name, sents in kept.items():
    arrays[name], counts[name]["literal_unk"], counts[name]["oov"] = _encode(
      sents, index, longest + 2
    )

  def per_split(key):
    return " / ".join(str(counts[s][key]) for s in kept)

  cap = f"max_length={max_length} ({overlong})" if max_length else "no length cap (max_length=0)"
  summary = (
    f"splits {' / '.join(kept)}: {per_split('read')} sentences read, {per_split('empty')} empty "
    f"dropped, {per_split('limited')} cut by limit/test_limit; {cap}: {per_split('dropped')} "
    f"dropped, {per_split('truncated')} truncated; kept {per_split('kept')} sentences, "
    f"{per_split('words')} words (+1 EOS each), longest {longest} words, T={longest + 2}; "
    f"vocabulary {len(vocab)} = 4 specials + {len(vocab) - 4} train words by frequency "
    f"(vocab_size={vocab_size or 'all'}); literal <unk> -> UNK: {per_split('literal_unk')}; "
    f"out-of-vocabulary -> UNK: {per_split('oov')}"
  )
  return TextData(
    train=arrays["train"],
    test=arrays["test"],
    valid=arrays.get("valid"),
    vocab=vocab,
    source=source,
    notes=f"{notes}; {summary}" if notes else summary,
    counts=counts,
  )


# ------------------------------------------------------------------- embedded corpus --

TOPICS = ("animals", "cooking", "sports", "music")
MOODS = ("positive", "negative")
# per topic: subjects, verbs, objects, topic adjectives, places
TOPIC_WORDS = {
  "animals": (
    ("cat", "dog", "fox", "horse", "owl"),
    ("chases", "watches", "follows", "hunts"),
    ("mouse", "rabbit", "bird", "squirrel", "ball"),
    ("furry", "wild", "hungry"),
    ("forest", "field", "barn"),
  ),
  "cooking": (
    ("chef", "baker", "cook", "grandmother"),
    ("bakes", "cooks", "slices", "tastes"),
    ("bread", "soup", "cake", "onion", "pie"),
    ("hot", "sweet", "fresh"),
    ("oven", "kitchen", "market"),
  ),
  "sports": (
    ("player", "team", "coach", "striker"),
    ("kicks", "wins", "throws", "catches"),
    ("ball", "match", "game", "trophy", "goal"),
    ("fast", "strong", "young"),
    ("stadium", "field", "gym"),
  ),
  "music": (
    ("singer", "band", "pianist", "drummer"),
    ("plays", "sings", "writes", "hears"),
    ("song", "melody", "tune", "album", "chord"),
    ("loud", "soft", "catchy"),
    ("studio", "stage", "concert"),
  ),
}
# per mood: adjectives, adverbs
MOOD_WORDS = {
  "positive": (("good", "lovely", "happy", "great"), ("happily", "gladly", "well")),
  "negative": (("bad", "awful", "sad", "ugly"), ("badly", "sadly", "slowly")),
}
_DETS = ("the", "a", "my", "every", "this")
# rare words: a person's name replaces the subject of NAME_RATE of the sentences, uniformly
# from 120 names, so many valid / test names are absent from train (-> UNK, counted as oov)
_NAMES = tuple(a + b + c + d for a in "bdkmr" for b in "aio" for c in "lnst" for d in "ae")
NAME_RATE = 0.05
_PREPS = ("in", "near", "after")


def embedded_sentences(n: int = 2000, seed: int = 0) -> tuple[list[list[str]], np.ndarray]:
  """The embedded corpus: n sentences of 3 to 12 words and their labels.

  Returns:
    (sentences, labels): labels int32 [n, 2] = (topic index into TOPICS, mood index into MOODS).
  """
  if n < 1:
    raise ValueError(f"n must be at least 1, got {n}")
  rng = np.random.default_rng([seed, _SALTS["embedded"]])

  def pick(words):  # Zipf-like weights 1, 1/2, 1/3, ... (inverse CDF of one uniform)
    cdf = np.cumsum(1.0 / np.arange(1, len(words) + 1))
    return words[int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))]

  sentences, labels = [], np.zeros((n, 2), np.int32)
  for i in range(n):
    topic, mood = int(rng.integers(len(TOPICS))), int(rng.integers(len(MOODS)))
    labels[i] = topic, mood
    subjects, verbs, objects, topic_adjs, places = TOPIC_WORDS[TOPICS[topic]]
    mood_adjs, adverbs = MOOD_WORDS[MOODS[mood]]

    def adjective():
      return pick(topic_adjs) if rng.random() < 0.5 else pick(mood_adjs)

    if rng.random() < NAME_RATE:  # a rare word: a name as the whole subject
      s = [_NAMES[rng.integers(len(_NAMES))]]
    else:
      s = [pick(_DETS)] if rng.random() < 0.8 else []
      if rng.random() < 0.3:
        s.append(adjective())
      s.append(pick(subjects))
    s.append(pick(verbs))
    if rng.random() < 0.8:
      s.append(pick(_DETS))
    s += [adjective() for _ in range(rng.choice(3, p=[0.5, 0.35, 0.15]))]
    s.append(pick(objects))
    if rng.random() < 0.4:
      s.append(pick(adverbs))
    if rng.random() < 0.35:
      s.append(pick(_PREPS))
      if rng.random() < 0.8:
        s.append(pick(_DETS))
      s.append(pick(places))
    sentences.append(s)
  return sentences, labels


def _split_sizes(n: int, valid_fraction: float, test_fraction: float) -> tuple[int, int, int]:
  n_valid, n_test = round(valid_fraction * n), round(test_fraction * n)
  if n - n_valid - n_test < 1:
    raise ValueError(f"too few sequences ({n}) for a train split")
  return n - n_valid - n_test, n_valid, n_test


def load_embedded(n: int = 2000, seed: int = 0, **kwargs: Any) -> TextData:
  """The embedded corpus (`embedded_sentences`), split 80/10/10 in order, as TextData.

  Args:
    n: sentences in total.
    seed: the corpus seed.
    **kwargs: `from_sentences`'s vocab_size, max_length, overlong, limit, test_limit.
  """
  sentences, labels = embedded_sentences(n, seed)
  n_train, n_valid, _ = _split_sizes(n, 0.1, 0.1)
  splits = {
    "train": sentences[:n_train],
    "valid": sentences[n_train : n_train + n_valid],
    "test": sentences[n_train + n_valid :],
  }
  topics = np.bincount(labels[:, 0], minlength=len(TOPICS))
  return from_sentences(
    splits,
    source=f"embedded(n={n}, seed={seed})",
    notes=f"embedded grammar corpus of {n} sentences (topics "
    + ", ".join(f"{t} {c}" for t, c in zip(TOPICS, topics))
    + f"; {int(np.sum(labels[:, 1] == 0))} positive mood)",
    **kwargs,
  )


# ------------------------------------------------------------------------------- PTB --


def read_sentences(path: str) -> list[list[str]]:
  """One whitespace-split sentence per line (blank lines give []), from a UTF-8 text file.

  Raises:
    FileNotFoundError: no such file.
    ValueError: a line that is not UTF-8, or holds a literal '<pad>', '<s>' or '</s>'
      ('path:line: ...').
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f"text file not found: {path}")
  out = []
  with open(path, "rb") as f:
    for lineno, raw in enumerate(f, 1):
      try:
        line = raw.decode("utf-8")
      except UnicodeDecodeError as e:
        raise ValueError(f"{path}:{lineno}: not UTF-8 text ({e})") from None
      words = line.split()
      if "<" in line:
        for j, w in enumerate(words):
          if w in RESERVED_WORDS:
            raise ValueError(
              f"{path}:{lineno}: word {j + 1} is the reserved token {w!r} (only <unk> may appear)"
            )
      out.append(words)
  return out


def load_ptb(ptb_dir: str = DEFAULT_PTB_DIR, **kwargs: Any) -> TextData:
  """The Penn Treebank (Mikolov's LM version) from `ptb_dir`/ptb.{train,valid,test}.txt.

  Args:
    ptb_dir: the directory of the three files.
    **kwargs: `from_sentences`'s vocab_size, max_length, overlong, limit, test_limit.

  Raises:
    FileNotFoundError: the directory or a file is missing (the message names it).
    ValueError: a malformed line (file and line named).
  """
  paths = {s: os.path.join(ptb_dir, f) for s, f in PTB_FILES.items()}
  for p in paths.values():
    if not os.path.isfile(p):
      raise FileNotFoundError(
        f"PTB file not found: {p} (expected {', '.join(PTB_FILES.values())} in {ptb_dir}; "
        "set the text data config's ptb_dir to a directory holding them, see "
        "../shared/data/ptb/SOURCE.md, or use source='embedded')"
      )
  splits = {s: read_sentences(p) for s, p in paths.items()}
  return from_sentences(splits, source=ptb_dir, notes=f"PTB from {ptb_dir}", **kwargs)


# --------------------------------------------------------------------------- oracles --

MIXTURE_MEANS = np.array([[-2.0, -2.0], [-2.0, 2.0], [2.0, -2.0], [2.0, 2.0]])  # paper 001
ORACLE_VOCAB = 1000  # oracle words 0..999, token ids 4..1003


class OracleParams(NamedTuple):
  """A random-LSTM oracle (float32 numpy; V words, E embedding, Z latent, H hidden units).

  c0 = z @ w_zc + b_zc, h0 = tanh(c0); gates = [embedding[x_t], z] @ w_x + h @ w_h + b, split
  (i, f, g, o); logits of x_{t+1} = h_t @ w_out_h + z @ w_out_z + b_out; x_1 ~ U{0..V-1}.
  """

  embedding: np.ndarray  # [V, E]
  w_x: np.ndarray  # [E + Z, 4H]: rows :E take the word embedding, rows E: take z
  w_h: np.ndarray  # [H, 4H]
  b: np.ndarray  # [4H]
  w_zc: np.ndarray  # [Z, H] initial cell state from z
  b_zc: np.ndarray  # [H]
  w_out_h: np.ndarray  # [H, V]
  w_out_z: np.ndarray  # [Z, V]
  b_out: np.ndarray  # [V]
  z: dict[str, np.ndarray]  # split -> [N_split, Z] the latents the split was sampled with
  component: dict[str, np.ndarray] | None  # 001: split -> int32 [N_split] mixture component


def _uniform(rng: np.random.Generator, bound: float, shape: tuple[int, ...]) -> np.ndarray:
  return rng.uniform(-bound, bound, shape).astype(np.float32)


def _small_matmul(x: np.ndarray, w: np.ndarray) -> np.ndarray:
  """x [N, K] @ w [K, M] for a small K (2, the latent size) as a sum of K outer products."""
  out = np.zeros((x.shape[0], w.shape[1]), w.dtype)
  for k in range(w.shape[0]):
    out += x[:, k : k + 1] * w[k]
  return out


class _Oracle:
  """OracleParams in one float dtype, with the word-embedding input projections precomputed."""

  def __init__(self, p: OracleParams, dtype: type = np.float64):
    self.dtype = dtype
    f = lambda a: np.asarray(a, np.float32).astype(dtype)  # the float32 values, exactly
    emb, w_x = f(p.embedding), f(p.w_x)
    self.num_words, e = emb.shape
    self.word_gates = (emb.astype(np.float64) @ w_x[:e].astype(np.float64)).astype(dtype)  # [V, 4H]
    self.w_xz, self.w_h, self.b = w_x[e:], f(p.w_h), f(p.b)
    self.w_zc, self.b_zc = f(p.w_zc), f(p.b_zc)
    self.w_out_h, self.w_out_z, self.b_out = f(p.w_out_h), f(p.w_out_z), f(p.b_out)

  def start(self, z: np.ndarray):
    """(h0, c0, z's share of the gates, z's share of the logits) for z [N, Z]."""
    z = np.asarray(z, self.dtype)
    c = _small_matmul(z, self.w_zc) + self.b_zc
    z_gates = _small_matmul(z, self.w_xz) + self.b
    return np.tanh(c), c, z_gates, _small_matmul(z, self.w_out_z) + self.b_out

  def step(self, words, h, c, z_gates, z_logits):
    """Feed words [N]: (h, c, logits [N, V] of the next word)."""
    gates = self.word_gates[words] + z_gates + h @ self.w_h
    i, f, g, o = np.split(gates, 4, axis=-1)
    c = special.expit(f) * c + special.expit(i) * np.tanh(g)
    h = special.expit(o) * np.tanh(c)
    logits = h @ self.w_out_h
    logits += z_logits
    return h, c, logits


def _inverse_cdf(weights: np.ndarray, u: np.ndarray) -> np.ndarray:
  """Per row i, the first j with weights[i, :j + 1].sum() >= u[i] * weights[i].sum(), int64 [N].

  A word of zero weight is never returned (for u > 0). Two levels (cumulative sums over blocks
  of about sqrt(V) words, then inside the chosen block) instead of one cumulative sum over all
  V words: numpy's row-wise cumsum is several times slower than its sums.

  Args:
    weights: [N, V] non-negative, each row with a positive sum.
    u: [N] uniforms in [0, 1).
  """
  n, v = weights.shape
  size = next(d for d in range(int(np.sqrt(v)), 0, -1) if v % d == 0)  # block size, divides V
  blocks = weights.reshape(n, v // size, size)
  block_cdf = np.cumsum(blocks.sum(-1), axis=-1)  # [N, V / size]
  target = (u * block_cdf[:, -1]).astype(weights.dtype)[:, None]
  # the first block whose cumulative mass reaches the target (`<`: a block of zero mass is
  # never chosen, also when u * total rounds up to the total)
  k = np.minimum(np.count_nonzero(block_cdf < target, axis=-1), v // size - 1)
  rows = np.arange(n)
  before = np.where(k > 0, block_cdf[rows, np.maximum(k - 1, 0)], 0)
  inside = blocks[rows, k]  # [N, size]
  j = np.count_nonzero(np.cumsum(inside, axis=-1) < target - before[:, None], axis=-1)
  # summation order can leave the target just past the block's last cumulative value: then take
  # the block's last word of positive weight
  last = size - 1 - np.argmax(inside[:, ::-1] > 0, axis=-1)
  return k * size + np.where(j < size, j, last)


def _sample(oracle: _Oracle, z: np.ndarray, first: np.ndarray, u: np.ndarray) -> np.ndarray:
  """Words int64 [N, 1 + L] from z [N, Z], first words [N] and uniforms u [N, L]."""
  out = [first]
  h, c, zg, zl = oracle.start(z)
  words = first
  for t in range(u.shape[1]):
    h, c, weights = oracle.step(words, h, c, zg, zl)
    weights -= weights.max(-1, keepdims=True)  # logits -> unnormalised probabilities
    np.exp(weights, out=weights)
    words = _inverse_cdf(weights, u[:, t])
    out.append(words)
  return np.stack(out, axis=1)


def oracle_sample(
  params: OracleParams,
  z: np.ndarray,
  length: int,
  rng: np.random.Generator,
  first_words: np.ndarray | None = None,
  chunk: int = 1024,
) -> np.ndarray:
  """Oracle words int64 [N, length] (ids 0..V-1, not token ids) for latents z [N, Z].

  The first word is uniform (or `first_words` [N] when given); each later one is drawn from the
  softmax by the inverse CDF of one uniform, all draws made up front (so `chunk`, the rows
  computed at once, changes nothing).
  The arithmetic runs in float32 (twice as fast as float64 on CPU): the probabilities differ
  from the exact float64 ones of `oracle_log_prob` by float32 rounding.
  """
  z = np.asarray(z, np.float32)
  first = rng.integers(0, params.embedding.shape[0], len(z))
  if first_words is not None:
    first = np.broadcast_to(np.asarray(first_words, np.int64), first.shape)
  u = rng.random((len(z), length - 1))
  oracle = _Oracle(params, np.float32)
  parts = [
    _sample(oracle, z[i : i + chunk], first[i : i + chunk], u[i : i + chunk])
    for i in range(0, len(z), chunk)
  ]
  return np.concatenate(parts) if parts else np.zeros((0, length), np.int64)


def oracle_log_prob(params: OracleParams, tokens: np.ndarray, z: np.ndarray) -> np.ndarray:
  """log p(x | z) under the oracle, teacher-forced, float64 [N].

  Args:
    params: the oracle.
    tokens: int [N, T] rows in TextData format (BOS, oracle words as token ids 4..V+3, EOS,
      PAD); rows may have different lengths.
    z: [N, Z] latents.

  Returns:
    log(1 / V) for the uniform first word + sum over later words of log softmax(logits)[word];
    the EOS is not scored (the oracle has none).

  Raises:
    ValueError: shapes that do not match, or a row whose words are not oracle words.
  """
  tokens = np.asarray(tokens)
  z = np.asarray(z, np.float64)
  if tokens.ndim != 2 or z.shape != (len(tokens), params.w_zc.shape[0]):
    raise ValueError(
      f"tokens must be [N, T] and z [N, {params.w_zc.shape[0]}], got {tokens.shape}, {z.shape}"
    )
  n_words = (tokens != PAD).sum(1) - 2  # BOS and EOS
  span = tokens[:, 1 : 1 + max(int(n_words.max(initial=0)), 0)]
  inside = np.arange(span.shape[1])[None, :] < n_words[:, None]
  v = params.embedding.shape[0]
  ok = (tokens[:, 0] == BOS) & (n_words >= 1)
  ok &= np.all(~inside | ((span >= len(SPECIALS)) & (span < len(SPECIALS) + v)), axis=1)
  ok &= tokens[np.arange(len(tokens)), np.maximum(n_words + 1, 0)] == EOS
  if not ok.all():
    i = int(np.flatnonzero(~ok)[0])
    raise ValueError(f"row {i} is not BOS, oracle words (ids 4..{v + 3}), EOS: {tokens[i]}")
  words = np.where(inside, span - len(SPECIALS), 0)
  oracle = _Oracle(params)
  h, c, zg, zl = oracle.start(z)
  total = np.full(len(tokens), -np.log(v))
  rows = np.arange(len(tokens))
  for t in range(words.shape[1] - 1):
    h, c, logits = oracle.step(words[:, t], h, c, zg, zl)
    top = logits.max(-1)
    log_norm = top + np.log(np.exp(logits - top[:, None]).sum(-1))
    logp = logits[rows, words[:, t + 1]] - log_norm
    total += np.where(inside[:, t + 1], logp, 0.0)
  return total


def oracle_001_log_prob(params: OracleParams, tokens: np.ndarray, z: np.ndarray) -> np.ndarray:
  """`oracle_log_prob` (the same for both oracles; named for paper 001)."""
  return oracle_log_prob(params, tokens, z)


def oracle_004_log_prob(params: OracleParams, tokens: np.ndarray, z: np.ndarray) -> np.ndarray:
  """`oracle_log_prob` (the same for both oracles; named for paper 004)."""
  return oracle_log_prob(params, tokens, z)


def _oracle_data(
  name: str,
  params: OracleParams,
  z: np.ndarray,
  component: np.ndarray | None,
  sizes: tuple[int, int, int],
  length: int,
  rng: np.random.Generator,
  seed: int,
  notes: str,
) -> tuple[TextData, OracleParams]:
  words = oracle_sample(params, z, length, rng)
  v = params.embedding.shape[0]
  vocab = SPECIALS + tuple(str(k) for k in range(v))
  n = len(words)
  tokens = np.full((n, length + 2), EOS, np.int32)
  tokens[:, 0] = BOS
  tokens[:, 1:-1] = words + len(SPECIALS)
  arrays = {"tokens": tokens, "length": np.full(n, length + 1, np.int32)}
  bounds = np.cumsum((0,) + sizes)
  cut = lambda a, k: a[bounds[k] : bounds[k + 1]]
  split = {s: {key: cut(a, k) for key, a in arrays.items()} for k, s in enumerate(SPLITS)}
  params = params._replace(
    z={s: cut(z, k) for k, s in enumerate(SPLITS)},
    component=None if component is None else {s: cut(component, k) for k, s in enumerate(SPLITS)},
  )
  counts = {s: {"kept": sizes[k], "words": sizes[k] * length} for k, s in enumerate(SPLITS)}
  data = TextData(
    train=split["train"],
    valid=split["valid"],
    test=split["test"],
    vocab=vocab,
    source=f"synthetic({name}, n={n}, seed={seed})",
    notes=f"{notes}; {n} sequences of {length} words, vocabulary {v} words (+4 specials), "
    f"T={length + 2}; split {sizes[0]} / {sizes[1]} / {sizes[2]} in generation order",
    counts=counts,
  )
  return data, params


def oracle_001(seed: int = 0, num_sequences: int = 20000) -> tuple[TextData, OracleParams]:
  """Paper 001's synthetic data (App B.1): see the module docstring for every detail.

  Args:
    seed: seed of the oracle's parameters, the latents and the sampling.
    num_sequences: sequences in total, split 80/10/10 (20,000 -> 16,000 / 2,000 / 2,000).

  Returns:
    (TextData with T = 12, length 11 everywhere, OracleParams with E = H = 100, Z = 2,
    V = 1000, the latents `z` and mixture `component` of every split).
  """
  e = h = 100
  nz, v, length = 2, ORACLE_VOCAB, 10
  sizes = _split_sizes(num_sequences, 0.1, 0.1)
  rng = np.random.default_rng([seed, _SALTS["oracle_001"]])
  params = OracleParams(
    embedding=_uniform(rng, 1.0, (v, e)),
    w_x=_uniform(rng, 1.0, (e + nz, 4 * h)),
    w_h=_uniform(rng, 1.0, (h, 4 * h)),
    b=_uniform(rng, 1.0, (4 * h,)) + _uniform(rng, 1.0, (4 * h,)),  # b_ih + b_hh
    w_zc=_uniform(rng, 1.0, (nz, h)),
    b_zc=np.zeros(h, np.float32),
    w_out_h=_uniform(rng, 1.0, (h, v)),
    w_out_z=_uniform(rng, 5.0, (nz, v)),
    b_out=np.zeros(v, np.float32),
    z={},
    component=None,
  )
  component = rng.integers(0, len(MIXTURE_MEANS), num_sequences).astype(np.int32)
  z = (MIXTURE_MEANS[component] + rng.standard_normal((num_sequences, nz))).astype(np.float32)
  per = ", ".join(str(c) for c in np.bincount(component, minlength=len(MIXTURE_MEANS)))
  notes = (
    "paper 001 oracle (He et al. 2019 App B.1; reference jxhe/vae-lagging-encoder "
    "synthetic-data/lm_lstm.py): z ~ 4-Gaussian mixture at (+-2, +-2) "
    f"(components {per}), LSTM 100/100 with z at every input, c0 = z W, h0 = tanh(c0), "
    "logits = W h + W' z with W' ~ U(-5, 5), first word uniform"
  )
  return _oracle_data("oracle_001", params, z, component, sizes, length, rng, seed, notes)


def oracle_004(seed: int = 0, num_sequences: int = 7000) -> tuple[TextData, OracleParams]:
  """Paper 004's synthetic data (SA-VAE Sec 5.1): see the module docstring for every detail.

  Args:
    seed: seed of the oracle's parameters, the latents and the sampling.
    num_sequences: sequences in total, split 5/7, 1/7, 1/7 (7,000 -> 5,000 / 1,000 / 1,000).

  Returns:
    (TextData with T = 7, length 6 everywhere, OracleParams with E = H = 100, Z = 2, V = 1000,
    w_zc = b_zc = w_out_z = b_out = 0, the latents `z` of every split, component None).
  """
  e = h = 100
  nz, v, length = 2, ORACLE_VOCAB, 5
  sizes = _split_sizes(num_sequences, 1 / 7, 1 / 7)
  rng = np.random.default_rng([seed, _SALTS["oracle_004"]])
  params = OracleParams(
    embedding=_uniform(rng, 1.0, (v, e)),
    w_x=_uniform(rng, 1.0, (e + nz, 4 * h)),
    w_h=_uniform(rng, 1.0, (h, 4 * h)),
    b=_uniform(rng, 1.0, (4 * h,)) + _uniform(rng, 1.0, (4 * h,)),  # b_ih + b_hh
    w_zc=np.zeros((nz, h), np.float32),
    b_zc=np.zeros(h, np.float32),
    w_out_h=_uniform(rng, 1.0, (h, v)),
    w_out_z=np.zeros((nz, v), np.float32),
    b_out=np.zeros(v, np.float32),
    z={},
    component=None,
  )
  z = rng.standard_normal((num_sequences, nz)).astype(np.float32)
  notes = (
    "paper 004 oracle (Kim et al. 2018 Sec 5.1 / slides): z1, z2 ~ N(0, 1), "
    "h_t = LSTM([x_t, z], h_{t-1}) with 100/100 units, h0 = c0 = 0, logits = W h_t, "
    "all parameters U(-1, 1), first word uniform"
  )
  return _oracle_data("oracle_004", params, z, None, sizes, length, rng, seed, notes)


# ------------------------------------------------------------------------------- config --


def default_config():
  """The text data section of a config (an `ml_collections.ConfigDict`, a comment per field)."""
  import ml_collections

  c = ml_collections.ConfigDict()
  c.source = "embedded"  # 'embedded' (no files) | 'ptb' | 'oracle_001' | 'oracle_004'
  c.seed = 0  # embedded / oracles: seed of the generated data (and of the oracle)
  c.num_sequences = 0  # embedded / oracles: sequences in total (0 = 2000 / 20000 / 7000)
  c.ptb_dir = ""  # ptb: directory of ptb.{train,valid,test}.txt ('' = DEFAULT_PTB_DIR,
  # ../shared/data/ptb beside the repository)
  c.vocab_size = 0  # embedded / ptb: vocabulary size incl. the 4 specials (0 = all train words)
  c.max_length = 0  # embedded / ptb: most words per sentence (0 = no cap: the longest)
  c.overlong = "drop"  # embedded / ptb: 'drop' | 'truncate' sentences over max_length
  c.limit = 0  # embedded / ptb: keep the first `limit` train sentences (0 = all)
  c.test_limit = 0  # embedded / ptb: keep the first `test_limit` valid and test sentences
  return c


def load(cfg: Any) -> TextData:
  """The text data set a config section describes.

  Args:
    cfg: an `ml_collections.ConfigDict` (or any mapping with `.get`) with the fields of
      `default_config()`; missing fields take those defaults:
      source: 'embedded' | 'ptb' | 'oracle_001' | 'oracle_004'.
      seed, num_sequences: the generated sources' seed and size (0 = the source's default).
      ptb_dir: ptb's directory ('' = DEFAULT_PTB_DIR).
      vocab_size, max_length, overlong, limit, test_limit: `from_sentences`'s (embedded, ptb).

  Returns:
    TextData (for the oracles, `oracle_001` / `oracle_004` with the same seed and size also
    give the oracle's parameters and latents).

  Raises:
    ValueError: an unknown source or a bad field.
    FileNotFoundError: ptb's files are missing.
  """
  d = default_config()

  def get(name):
    return cfg.get(name, d[name])

  source, seed, num = get("source"), int(get("seed")), int(get("num_sequences"))
  corpus_args = dict(
    vocab_size=int(get("vocab_size")),
    max_length=int(get("max_length")),
    overlong=str(get("overlong")),
    limit=int(get("limit")),
    test_limit=int(get("test_limit")),
  )
  if source == "embedded":
    return load_embedded(num or 2000, seed, **corpus_args)
  if source == "ptb":
    return load_ptb(get("ptb_dir") or DEFAULT_PTB_DIR, **corpus_args)
  if source == "oracle_001":
    return oracle_001(seed, num or 20000)[0]
  if source == "oracle_004":
    return oracle_004(seed, num or 7000)[0]
  raise ValueError(f"unknown text data source {source!r}: expected one of {SOURCES}")
