"""Text data (data/text.py): the format, the embedded corpus, PTB reading, the two oracles."""

import collections
import os

import ml_collections
import numpy as np
import pytest
from scipy import special

from alala_jax.data import text

PTB_DIR = text.DEFAULT_PTB_DIR
HAVE_PTB = all(os.path.isfile(os.path.join(PTB_DIR, f)) for f in text.PTB_FILES.values())


def check_format(data: text.TextData):
  """The format invariants of the module docstring, on every split."""
  assert data.vocab[:4] == text.SPECIALS and len(set(data.vocab)) == data.vocab_size
  splits = data.splits()
  t = data.max_tokens
  longest = max(int(a["length"].max()) for a in splits.values())
  assert t == longest + 1  # (longest kept n) + 2, with length = n + 1
  for name, a in splits.items():
    tokens, length = a["tokens"], a["length"]
    assert tokens.dtype == np.int32 and length.dtype == np.int32, name
    assert tokens.shape == (len(length), t), name
    assert np.all(length >= 1) and np.all(length <= t - 1), name
    assert np.all(tokens >= 0) and np.all(tokens < data.vocab_size), name
    assert np.all(tokens[:, 0] == text.BOS), name
    rows = np.arange(len(length))
    assert np.all(tokens[rows, length] == text.EOS), name
    pos = np.arange(t)[None, :]
    words = (pos >= 1) & (pos < length[:, None])
    assert not np.isin(tokens[words], [text.PAD, text.BOS, text.EOS]).any(), name
    assert np.all(tokens[pos > length[:, None]] == text.PAD), name
    # the target mask marks exactly the non-PAD targets (words and EOS)
    np.testing.assert_array_equal(text.mask(a), tokens[:, 1:] != text.PAD)
    for i in rows[:: max(1, len(rows) // 7)]:
      decoded = text.decode_tokens(data.vocab, tokens[i])
      assert len(decoded) == length[i] - 1
      assert [data.vocab.index(w) for w in decoded] == list(tokens[i, 1 : length[i]])


def assert_same(a: text.TextData, b: text.TextData):
  assert a.vocab == b.vocab and a.notes == b.notes and list(a.splits()) == list(b.splits())
  for (name, x), y in zip(a.splits().items(), b.splits().values()):
    for key in ("tokens", "length"):
      np.testing.assert_array_equal(x[key], y[key], err_msg=name)


def write_corpus(directory, splits):
  for name, lines in splits.items():
    with open(os.path.join(directory, text.PTB_FILES[name]), "w") as f:
      f.writelines(f" {line} \n" if line else "\n" for line in lines)


TINY = {
  "train": ["a b c <unk>", "a b", "", "b c d e f g", "a"],
  "valid": ["a z <unk>", "q q", "   "],
  "test": ["c a", "y b"],
}


@pytest.fixture(scope="module")
def oracle_001_full():
  return text.oracle_001(seed=0)


@pytest.fixture(scope="module")
def oracle_004_full():
  return text.oracle_004(seed=0)


@pytest.fixture(scope="module")
def ptb():
  if not HAVE_PTB:
    pytest.skip(
      f"PTB not found at {PTB_DIR} (../shared/data is not part of the project; the test runs "
      "where it is present)"
    )
  return text.load_ptb(PTB_DIR)


# ------------------------------------------------------------------------- helpers --


def test_encode_decode_and_mask():
  vocab = text.SPECIALS + ("x", "y")
  a = text.encode_sentences([["x", "y", "x"], ["y"], ["w", "<unk>"]], vocab)
  np.testing.assert_array_equal(a["tokens"], [[1, 4, 5, 4, 2], [1, 5, 2, 0, 0], [1, 3, 3, 2, 0]])
  np.testing.assert_array_equal(a["length"], [4, 2, 3])
  np.testing.assert_array_equal(text.mask(a), [[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0]])
  assert text.decode_tokens(vocab, a["tokens"][0]) == ["x", "y", "x"]
  assert text.decode_tokens(vocab, a["tokens"][2]) == ["<unk>", "<unk>"]
  assert text.decode_tokens(vocab, [5, 4, 2, 4]) == ["y", "x"]  # no BOS; stops at EOS
  assert text.encode_sentences([["x"]], vocab, max_tokens=6)["tokens"].shape == (1, 6)
  with pytest.raises(ValueError, match="sentence 0 has 3 words"):
    text.encode_sentences([["x", "y", "x"]], vocab, max_tokens=4)
  with pytest.raises(ValueError, match="sentence 1, word 2: reserved token '</s>'"):
    text.encode_sentences([["x"], ["x", "</s>"]], vocab)


def test_build_vocab_frequency_then_alphabetical():
  sents = [["d", "c", "b", "<unk>"], ["c", "a", "a"], ["<unk>", "<unk>", "c"]]
  assert text.build_vocab(sents) == text.SPECIALS + ("c", "a", "b", "d")  # 3, 2, 1, 1
  assert text.build_vocab(sents, vocab_size=6) == text.SPECIALS + ("c", "a")
  with pytest.raises(ValueError, match="vocab_size"):
    text.build_vocab(sents, vocab_size=4)


# ---------------------------------------------------------------------- embedded --


def test_embedded_corpus_format_split_and_determinism():
  d = text.load(text.default_config())
  check_format(d)
  assert [len(a["length"]) for a in d.splits().values()] == [1600, 200, 200]
  assert_same(d, text.load(text.default_config()))
  assert "embedded" in d.source
  other = text.load(ml_collections.ConfigDict({"seed": 1}))
  assert not np.array_equal(other.train["tokens"][:50], d.train["tokens"][:50])
  n_words = np.concatenate([a["length"] - 1 for a in d.splits().values()])
  assert n_words.min() == 3 and n_words.max() == 12
  # vocabulary from train only: every train word is in it, and the valid / test words that are
  # not are exactly the counted out-of-vocabulary ones
  sents, _ = text.embedded_sentences(2000, 0)
  train_words = {w for s in sents[:1600] for w in s}
  assert set(d.vocab[4:]) == train_words
  unseen = [
    sum(w not in train_words for s in part for w in s) for part in (sents[1600:1800], sents[1800:])
  ]
  assert unseen[0] + unseen[1] > 0  # the rare names
  assert [d.counts["valid"]["oov"], d.counts["test"]["oov"]] == unseen
  assert d.counts["train"]["oov"] == 0
  assert int(np.sum(d.valid["tokens"] == text.UNK)) == unseen[0]


def test_embedded_topics_determine_content_words():
  sents, labels = text.embedded_sentences(800, seed=3)
  assert labels.shape == (800, 2)
  counts = np.bincount(labels[:, 0], minlength=4)
  assert counts.min() > 150  # topics roughly balanced
  topic_word_sets = [set(sum(text.TOPIC_WORDS[t], ())) for t in text.TOPICS]
  for s, (topic, mood) in zip(sents, labels):
    others = set().union(*(w for k, w in enumerate(topic_word_sets) if k != topic))
    own = [w for w in s if w in topic_word_sets[topic]]
    assert own, s  # at least the verb and the object
    assert not (set(s) - topic_word_sets[topic]) & others, (s, topic)
    adjs, advs = text.MOOD_WORDS[text.MOODS[1 - mood]]
    assert not set(s) & (set(adjs) | set(advs)), (s, mood)


# --------------------------------------------------------------- PTB-style files --


@pytest.mark.parametrize("overlong", ["drop", "truncate"])
def test_tiny_corpus_counts(tmp_path, overlong):
  write_corpus(tmp_path, TINY)
  d = text.load_ptb(str(tmp_path), max_length=5, overlong=overlong)
  check_format(d)
  c = d.counts
  assert [c[s]["read"] for s in text.SPLITS] == [5, 3, 2]
  assert [c[s]["empty"] for s in text.SPLITS] == [1, 1, 0]
  assert [c[s]["literal_unk"] for s in text.SPLITS] == [1, 1, 0]
  if overlong == "drop":
    assert c["train"]["dropped"] == 1 and c["train"]["truncated"] == 0
    assert c["train"]["kept"] == 3 and c["train"]["words"] == 4 + 2 + 1
    # counts a 3, b 2, c 1: the dropped sentence's words are not in the vocabulary
    assert d.vocab == text.SPECIALS + ("a", "b", "c")
    assert [c[s]["oov"] for s in text.SPLITS] == [0, 3, 1]  # z q q / y
    assert d.max_tokens == 4 + 2
  else:
    assert c["train"]["dropped"] == 0 and c["train"]["truncated"] == 1
    assert c["train"]["kept"] == 4 and c["train"]["words"] == 4 + 2 + 5 + 1
    # a 3, b 3 (a tie, alphabetical), c 2, d e f 1; g was cut by the truncation
    assert d.vocab == text.SPECIALS + ("a", "b", "c", "d", "e", "f")
    assert text.decode_tokens(d.vocab, d.train["tokens"][2]) == ["b", "c", "d", "e", "f"]
    assert d.max_tokens == 5 + 2
  # a and z <unk>: z is out of vocabulary, <unk> literal; both are UNK
  assert text.decode_tokens(d.vocab, d.valid["tokens"][0]) == ["a", "<unk>", "<unk>"]
  assert f"{overlong}" in d.notes and "literal <unk> -> UNK: 1 / 1 / 0" in d.notes


def test_tiny_corpus_no_cap_vocab_size_and_limits(tmp_path):
  write_corpus(tmp_path, TINY)
  d = text.load_ptb(str(tmp_path))
  check_format(d)
  assert d.max_tokens == 6 + 2  # the longest sentence of all splits, no cap by default
  assert sum(c["dropped"] + c["truncated"] for c in d.counts.values()) == 0
  small = text.load_ptb(str(tmp_path), vocab_size=6)
  assert small.vocab == text.SPECIALS + ("a", "b")  # a 3, b 3, c 2, ...
  # c, c d e f g in train; z, q, q in valid; c, y in test are cut or unseen
  assert [small.counts[s]["oov"] for s in text.SPLITS] == [6, 3, 2]
  lim = text.load_ptb(str(tmp_path), limit=2, test_limit=1)
  assert [len(a["length"]) for a in lim.splits().values()] == [2, 1, 1]
  assert lim.counts["train"]["limited"] == 2 and lim.vocab == text.SPECIALS + ("a", "b", "c")


def test_bad_files_name_file_and_line(tmp_path):
  missing = tmp_path / "nowhere"
  with pytest.raises(FileNotFoundError, match=r"nowhere.*ptb\.train\.txt.*ptb_dir"):
    text.load_ptb(str(missing))
  write_corpus(tmp_path, {**TINY, "valid": ["a b", "a <s> b"]})
  with pytest.raises(ValueError, match=r"ptb\.valid\.txt:2: word 2 is the reserved token '<s>'"):
    text.load_ptb(str(tmp_path))
  write_corpus(tmp_path, TINY)
  with open(tmp_path / "ptb.test.txt", "ab") as f:
    f.write(b"ok\n\xff\xfe bad\n")
  with pytest.raises(ValueError, match=r"ptb\.test\.txt:4: not UTF-8"):
    text.load_ptb(str(tmp_path))
  os.remove(tmp_path / "ptb.test.txt")
  with pytest.raises(FileNotFoundError, match=r"ptb\.test\.txt"):
    text.load_ptb(str(tmp_path))
  with pytest.raises(ValueError, match="overlong"):
    text.from_sentences({"train": [["a"]], "test": [["a"]]}, overlong="cut")


def test_real_ptb(ptb):
  check_format(ptb)
  c = ptb.counts
  # ../shared/data/ptb/SOURCE.md: lines, tokens and <unk> occurrences
  assert [c[s]["read"] for s in text.SPLITS] == [42068, 3370, 3761]
  assert [c[s]["kept"] for s in text.SPLITS] == [42068, 3370, 3761]
  assert [c[s]["words"] for s in text.SPLITS] == [887521, 70390, 78669]
  assert int(ptb.train["length"].sum()) == 887521 + 42068  # words + one EOS each
  assert c["train"]["literal_unk"] == 45020 and c["train"]["empty"] == 0
  # 9,999 distinct tokens incl. <unk>, all in train: 9,998 words + 4 specials, no OOV
  assert ptb.vocab_size == 10002
  assert [c[s]["oov"] for s in text.SPLITS] == [0, 0, 0]
  for s, a in ptb.splits().items():
    assert int(np.sum(a["tokens"] == text.UNK)) == c[s]["literal_unk"]
  with open(os.path.join(PTB_DIR, "ptb.train.txt")) as f:
    first = f.readline().split()
    freq = collections.Counter(w for line in [first, *map(str.split, f)] for w in line)
  assert text.decode_tokens(ptb.vocab, ptb.train["tokens"][0]) == first
  assert ptb.vocab[4] == max((w for w in freq if w != "<unk>"), key=freq.get)
  assert ptb.max_tokens == 84  # longest sentence (82 words) + 2, no cap by default
  capped = text.from_sentences(
    {s: text.read_sentences(os.path.join(PTB_DIR, f)) for s, f in text.PTB_FILES.items()},
    max_length=40,
  )
  over = [sum(n > 41 for n in a["length"]) for a in ptb.splits().values()]
  assert [capped.counts[s]["dropped"] for s in text.SPLITS] == over and min(over) > 0
  assert capped.max_tokens == 42


# ---------------------------------------------------------------------- oracles --


def test_oracle_001_data_and_params(oracle_001_full):
  d, p = oracle_001_full
  check_format(d)
  assert [len(a["length"]) for a in d.splits().values()] == [16000, 2000, 2000]
  assert d.max_tokens == 12 and np.all(d.train["length"] == 11)
  assert d.vocab == text.SPECIALS + tuple(str(k) for k in range(1000))
  assert np.all(d.train["tokens"][:, 1:-1] >= 4)  # never a special
  shapes = {k: v.shape for k, v in p._asdict().items() if isinstance(v, np.ndarray)}
  assert shapes == {
    "embedding": (1000, 100),
    "w_x": (102, 400),
    "w_h": (100, 400),
    "b": (400,),
    "w_zc": (2, 100),
    "b_zc": (100,),
    "w_out_h": (100, 1000),
    "w_out_z": (2, 1000),
    "b_out": (1000,),
  }
  for name in ("embedding", "w_x", "w_h", "w_zc", "w_out_h"):
    a = getattr(p, name)
    assert a.dtype == np.float32 and np.abs(a).max() <= 1 and np.abs(a).max() > 0.99, name
  assert 4.9 < np.abs(p.w_out_z).max() <= 5 and 1 < np.abs(p.b).max() <= 2
  assert not p.b_out.any() and not p.b_zc.any()
  # z: the 4-component mixture with unit variance, equal weights
  z = np.concatenate([p.z[s] for s in text.SPLITS])
  comp = np.concatenate([p.component[s] for s in text.SPLITS])
  assert z.shape == (20000, 2) and [len(p.z[s]) for s in text.SPLITS] == [16000, 2000, 2000]
  np.testing.assert_allclose(np.bincount(comp) / 20000, 0.25, atol=0.015)
  for k, mean in enumerate(text.MIXTURE_MEANS):
    zk = z[comp == k]
    np.testing.assert_allclose(zk.mean(0), mean, atol=0.06)
    np.testing.assert_allclose(zk.std(0), 1.0, atol=0.04)
  assert sorted(map(tuple, text.MIXTURE_MEANS)) == [(-2, -2), (-2, 2), (2, -2), (2, 2)]


def test_oracles_are_deterministic():
  a, pa = text.oracle_001(seed=5, num_sequences=300)
  b, pb = text.oracle_001(seed=5, num_sequences=300)
  c, _ = text.oracle_001(seed=6, num_sequences=300)
  assert_same(a, b)
  np.testing.assert_array_equal(pa.w_x, pb.w_x)
  np.testing.assert_array_equal(pa.z["test"], pb.z["test"])
  assert not np.array_equal(a.train["tokens"], c.train["tokens"])
  assert [len(x["length"]) for x in a.splits().values()] == [240, 30, 30]
  d4, p4 = text.oracle_004(seed=5, num_sequences=700)
  assert_same(d4, text.oracle_004(seed=5, num_sequences=700)[0])
  check_format(d4)
  assert [len(x["length"]) for x in d4.splits().values()] == [500, 100, 100]
  assert d4.max_tokens == 7 and p4.component is None
  assert not p4.w_zc.any() and not p4.w_out_z.any() and not p4.b_out.any()
  assert p4.w_x.shape == (102, 400) and np.abs(p4.w_x[100:]).max() > 0.9  # z at every input
  z = np.concatenate([p4.z[s] for s in text.SPLITS])
  assert abs(z.mean()) < 0.1 and abs(z.std() - 1) < 0.08


def reference_log_prob(p: text.OracleParams, words: list[int], z: np.ndarray) -> float:
  """log p(words | z), one sequence, one time step at a time (independent of the module)."""
  f = lambda a: np.asarray(a, np.float64)
  sigmoid = lambda x: 1.0 / (1.0 + np.exp(-x))
  z = f(z)
  c = z @ f(p.w_zc) + f(p.b_zc)
  h = np.tanh(c)
  hidden = h.shape[0]
  total = -np.log(p.embedding.shape[0])
  for t in range(len(words) - 1):
    x = np.concatenate([f(p.embedding[words[t]]), z])
    gates = x @ f(p.w_x) + h @ f(p.w_h) + f(p.b)
    i, fg, g, o = (gates[k * hidden : (k + 1) * hidden] for k in range(4))
    c = sigmoid(fg) * c + sigmoid(i) * np.tanh(g)
    h = sigmoid(o) * np.tanh(c)
    logits = h @ f(p.w_out_h) + z @ f(p.w_out_z) + f(p.b_out)
    m = logits.max()
    total += logits[words[t + 1]] - m - np.log(np.sum(np.exp(logits - m)))
  return float(total)


@pytest.mark.parametrize("which", ["001", "004"])
def test_log_prob_matches_step_by_step_loop(which):
  make = text.oracle_001 if which == "001" else text.oracle_004
  log_prob = text.oracle_001_log_prob if which == "001" else text.oracle_004_log_prob
  d, p = make(seed=2, num_sequences=70)
  tokens, z = d.test["tokens"][:6].copy(), p.z["test"][:6]
  # ragged rows too: cut row 1 to 3 words and row 2 to 1 word
  tokens[1, 4:] = text.PAD
  tokens[1, 4] = text.EOS
  tokens[2, 2:] = text.PAD
  tokens[2, 2] = text.EOS
  got = log_prob(p, tokens, z)
  lengths = (tokens != text.PAD).sum(1) - 2
  want = [reference_log_prob(p, list(r[1 : 1 + n] - 4), zi) for r, n, zi in zip(tokens, lengths, z)]
  np.testing.assert_allclose(got, want, rtol=1e-10)
  assert got[2] == pytest.approx(-np.log(1000))  # the uniform first word alone
  bad = tokens[:2].copy()
  bad[1, 2] = text.UNK  # not an oracle word
  with pytest.raises(ValueError, match="row 1 is not BOS, oracle words"):
    log_prob(p, bad, z[:2])


def test_sampling_follows_the_oracle_distribution(oracle_001_full):
  _, p = oracle_001_full
  z = np.tile(np.array([[1.5, -0.7]], np.float32), (20000, 1))
  words = text.oracle_sample(p, z, 2, np.random.default_rng(0), first_words=7)
  assert np.all(words[:, 0] == 7)
  freq = np.bincount(words[:, 1], minlength=1000) / len(words)
  pairs = np.stack([np.full(1000, text.BOS), np.full(1000, 7 + 4), np.arange(1000) + 4])
  tokens = np.concatenate([pairs.T, np.full((1000, 1), text.EOS)], axis=1)
  prob = np.exp(text.oracle_log_prob(p, tokens, np.repeat(z[:1], 1000, 0)) + np.log(1000))
  assert prob.sum() == pytest.approx(1.0)
  sd = np.sqrt(prob * (1 - prob) / len(words))
  assert np.all(np.abs(freq - prob) <= 5 * sd + 1e-4)
  assert special.rel_entr(freq, prob)[freq > 0].sum() < 0.05


def test_own_latent_explains_sequences_better(oracle_001_full, oracle_004_full):
  rng = np.random.default_rng(0)
  for (d, p), margin, share in ((oracle_001_full, 20.0, 0.9), (oracle_004_full, 1.0, 0.7)):
    z = p.z["test"]
    own = text.oracle_log_prob(p, d.test["tokens"], z)
    shuffled = text.oracle_log_prob(p, d.test["tokens"], z[rng.permutation(len(z))])
    assert own.mean() > shuffled.mean() + margin, (own.mean(), shuffled.mean())
    assert np.mean(own > shuffled) > share


# ------------------------------------------------------------------------ config --


def test_load_from_config(tmp_path):
  write_corpus(tmp_path, TINY)
  cfg = text.default_config()
  cfg.source, cfg.ptb_dir, cfg.max_length, cfg.overlong = "ptb", str(tmp_path), 5, "truncate"
  assert text.load(cfg).counts["train"]["truncated"] == 1
  d = text.load(ml_collections.ConfigDict({"source": "oracle_001", "num_sequences": 100}))
  assert_same(d, text.oracle_001(0, 100)[0])
  d = text.load(ml_collections.ConfigDict({"source": "oracle_004", "num_sequences": 70, "seed": 3}))
  assert_same(d, text.oracle_004(3, 70)[0])
  d = text.load(ml_collections.ConfigDict({"num_sequences": 100, "limit": 10, "vocab_size": 20}))
  assert len(d.train["length"]) == 10 and d.vocab_size <= 20 and "embedded" in d.source
  with pytest.raises(ValueError, match="unknown text data source 'yahoo'"):
    text.load(ml_collections.ConfigDict({"source": "yahoo"}))
