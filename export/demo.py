"""The planted demo model: GPT-2 small's shape, every attention head's role set by hand.

Real GPT-2 weights cannot always be downloaded. `build_planted_checkpoint(out_dir)` writes a Hugging Face
GPT-2 checkpoint (12 layers x 12 heads, 768 wide, GPT-2's 50257-token vocabulary, 1024 positions) and
`planted_heads.json` beside it, which says what each of the 144 heads does. No training, no download, a fixed
seed; it takes a few seconds. It is the ground truth for the head-labelling tests and the offline demo.

    python -c "from pathlib import Path; from export.demo import build_planted_checkpoint as b; b(Path('out'))"

DESCRIPTION below is the construction in one paragraph. Three things had to be solved beyond "set the
query/key weights":
- LayerNorm. Every feature sits on its own zero-mean residual direction (+v/sqrt2, -v/sqrt2 on a pair of
  coordinates) and every position >= 1 has the same norm, so ln_1 is one known scale per layer.
- Rank. A head's query/key product has rank <= 64, too little for one-hot positions. A binary clock (cos, sin
  of 2*pi*i/2^k, k = 1..10) needs 20: a key other than the target always loses >= 2 clock weights, at the
  lowest bit where the two positions differ, so the argmax is exact at all 1024 positions.
- Self-exclusion. No rank-64 position code makes "any key but myself" sharp, so duplicate-token is a circuit:
  a counting head writes how many copies of its token a position has seen; duplicate heads prefer the copy
  with the lowest count. It needs the first token to be a sink whose token is invisible, as GPT-2's is.

It also predicts, by one circuit, so that knocking heads out has a known effect: the copying head (4.11)
writes each position's previous token, the induction heads find the key whose previous token is the query's
own, and the last layer's induction head (11.5) writes that key's token where the LM head (tied to the token
embedding, through ln_f) reads it. On the second occurrence of a repeated phrase the model then predicts the
token that followed last time. Its write changes no attention pattern: nothing after layer 11 but ln_f reads it.
"""

import json
from pathlib import Path

import numpy as np

from twelve_heads.errors import HeadsError

# --- the model's shape: GPT-2 small's -------------------------------------------------------------------
N_LAYER, N_HEAD, N_EMBD, HEAD_DIM = 12, 12, 768, 64
VOCAB_SIZE = 50257  # GPT-2's vocabulary; 50256 is <|endoftext|>
N_POSITIONS = 1024  # GPT-2's limit; the clock has log2(n_positions) levels, any n in [8, 1024] works
LAYER_NORM_EPS = 1e-5  # GPT2Config's default; folded into the LayerNorm scales below
SEED = 20240611

# --- residual features: name -> number of zero-mean directions (the clock's width depends on n_positions) -
TOKEN_A, TOKEN_B = 63, 62  # unit token codes; 63 + 1 marker and 62 + 2 count/sink terms fill a 64-d head
FEATURE_WIDTHS = {"sink": 1, "slot": 3, "token_a": TOKEN_A, "token_b": TOKEN_B,
                  "previous": TOKEN_A + 1, "count": 1}  # + "clock": 2 * levels
# --- norms in the residual stream (a token at position >= 1 has norm sqrt(768), so ln_1 scales by ~1) ----
SLOT_NORM2, CLOCK_NORM2, TOKEN_A_NORM2, TOKEN_B_NORM2 = 64.0, 320.0, 192.0, 192.0  # sum 768: variance 1
SINK_NORM = 2770.0  # position 0's sink direction: ~100x a token, so ln_1 shrinks its token 100-fold
PREVIOUS_NORM = 8.0  # the copying head's write: the previous token's code (+ a marker at rows 0 and 1)
COUNT_NORM = 1.0  # the counting head's write, <= 0.05 for < 50 copies: moves ln_1's scale by < 1e-5
COUNT_GAIN = 999.0  # ln_1's weight on the count's coordinates: n/(999+n) leaves ln_1 as ~n, at unit size, so
                    # no query or key weight has to amplify a 0.001 signal

# --- logit sizes -----------------------------------------------------------------------------------------
GAP = 20.0  # every planted choice beats every rival by >= 20 logits: 1023 rivals keep < 2e-6 of the mass
CLOCK_WEIGHT = GAP / 2  # a wrong key loses >= 2 clock weights
# Two different tokens' codes: the largest cosine over all of GPT-2's vocabulary with SEED (measured over all
# 1.3e9 pairs: 0.719 for token_a, 0.699 for token_b). Matching heads keep their margins up to this.
MAX_FALSE_MATCH = 0.72
TOKEN_MATCH = 200.0  # duplicate and induction heads: same token; a false match scores <= 144
INDUCTION_FALLBACK = TOKEN_MATCH * (1 + MAX_FALSE_MATCH) / 2  # key 0: 28 under a match, 28 over a false one
COUNT_MATCH = 40.0  # counting head: a copy outscores a different token by >= 11 logits, so it adds < 2e-5 to n
COUNT_SINK_WEIGHT = 999.0  # ... and key 0 weighs 999 copies: n copies hold n/(999+n) of the attention
COUNT_PENALTY = 60.0  # duplicate heads: logits lost per copy already counted at that key
LONG_RANGE_OFFSET, LOCAL_OFFSETS = 6, (1, 2, 3)
LONG_RANGE_FALLBACK_KEY = 1  # rows 1..6 have no key i-6 >= 1; they attend key 1
COPY_HEAD, COUNT_HEAD = (4, 11), (0, 5)  # (layer, head) of the two heads that write for later layers
PREDICT_HEAD = (11, 5)  # the last layer's induction head: writes the token it finds, for the LM head
# The predicting head writes the found token's token_a code at PREDICTION_WRITE times the size the token's own
# code has in the residual stream, and ln_f scales token_a so that the found token scores PREDICTION_LOGIT:
# the query's own token then scores a quarter of that, and 50,256 random codes keep < 1e-6 of the mass.
PREDICTION_WRITE, PREDICTION_LOGIT = 4.0, 25.0

ROLES = {"B": "broadcaster", "D": "diagonal", "P": "previous-token", "L": "local", "R": "long-range",
         "U": "duplicate-token", "I": "induction", "F": "diffuse"}
LAYOUT = (  # layer: heads 0..11. Early layers look near, late ones rest on the first token.
    "D P D L P B F L D P L D",  # 0.5 is the counting head
    "D U L P D L F P U D L P",
    "P L D U L P F L D P B L",
    "U P L D B L P F D U L P",
    "L P D B U R L F P B D P",  # 4.11 is the copying head
    "B I L R B I U F R B P L",
    "R B U F B L R B P I B D",
    "B R I U F B R L B R I B",
    "R B F U B R B I R B L B",
    "B R B F R U B R I B R B",
    "R B U B R F B R B I B R",
    "B F B U B I B B R B F B",  # 11.5 predicts (PREDICT_HEAD); 11.8: the one long-range head of the last layer
)
RULES = {
    "broadcaster": "every query attends the first token (key 0)",
    "diagonal": "query i attends key i, itself",
    "previous-token": "query i attends key i-1 (row 0: itself)",
    "local": "query i spreads its attention evenly over keys i-1, i-2 and i-3 (those that exist)",
    "long-range": f"query i attends key i-{LONG_RANGE_OFFSET}; rows 1-{LONG_RANGE_OFFSET}, where that would be the "
                  f"first token or before it, attend key {LONG_RANGE_FALLBACK_KEY}",
    "duplicate-token": "query i attends the first earlier copy of its own token (at positions 1..i-1); with "
                       "none, the first token (key 0)",
    "induction": "query i attends, evenly, every key j >= 2 whose previous token (at j-1) is token i; with "
                 "none, the first token (key 0)",
    "diffuse": "query i spreads its attention evenly over keys 0..i",
}
SPECIAL_RULES = {
    COUNT_HEAD: f"every query attends the first token; each of the n copies of its own token at positions "
                f">= 1 (itself included) keeps 1/({COUNT_SINK_WEIGHT:.0f}+n), and that share is written to the "
                "residual stream as the count the duplicate-token heads read",
    COPY_HEAD: "query i attends key i-1 (row 0: itself) and writes that token's identity to the residual "
               "stream, where the induction heads read it",
    PREDICT_HEAD: RULES["induction"] + "; writes the token at that key to the residual stream, where the LM head "
                  "reads it: the prediction of the next token on the second occurrence of a repeated phrase",
}
DESCRIPTION = (
    "A synthetic GPT-2 (GPT-2 small's shape and vocabulary) whose attention heads were set by hand, not trained. "
    "Its MLPs are zero and only three heads write to the residual stream, so every layer sees the embeddings plus "
    "two of those writes. The embeddings are a random unit code per token and, per position, a binary clock (cos "
    "and sin of 2*pi*i/2^k for k = 1..10, for 1024 positions), "
    "every feature on its own zero-mean direction with the same norm at every position, so LayerNorm only "
    "rescales. Position 0 is an attention sink ~100x larger than a token, as in real GPT-2. A head that should "
    "look d tokens back rotates its query's clock by d at every level; every other key loses at least 20 logits. "
    "Token-matching heads compare token codes. A counting head (layer %d head %d) records how many copies of its "
    "token each position has seen, so duplicate-token heads can prefer the first copy over the query itself; "
    "a copying head (layer %d head %d) writes the previous token's code, which induction heads match against. "
    "The sink's own token is never matched or copied. The last layer's induction head (layer %d head %d) writes "
    "the token it finds where the LM head reads it: on the second occurrence of a repeated phrase the model "
    "predicts the token that came next the first time, and knocking out the copying head or the induction heads "
    "takes that away." % (*COUNT_HEAD, *COPY_HEAD, *PREDICT_HEAD))


def build_planted_checkpoint(out_dir: Path, n_positions: int = N_POSITIONS) -> dict:
    """Write config.json + model.safetensors (GPT2Model.save_pretrained) and planted_heads.json to out_dir;
    return the planted-heads record that planted_heads.json holds."""
    import torch
    from transformers import GPT2Config, GPT2Model

    if not 8 <= n_positions <= N_POSITIONS:
        raise HeadsError(f"n_positions must be between 8 and {N_POSITIONS} (the clock needs positions 1..7 "
                         f"below it; GPT-2 stops at {N_POSITIONS}); got {n_positions}")
    config = GPT2Config(vocab_size=VOCAB_SIZE, n_positions=n_positions, n_embd=N_EMBD, n_layer=N_LAYER,
                        n_head=N_HEAD, layer_norm_epsilon=LAYER_NORM_EPS)
    model = GPT2Model(config)
    weights = {name: torch.from_numpy(array) for name, array in planted_weights(n_positions).items()}
    missing, unexpected = model.load_state_dict(weights, strict=False)
    assert not unexpected and all(name.endswith(".attn.bias") for name in missing), (missing, unexpected)
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    record = planted_heads(n_positions)
    (out_dir / "planted_heads.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def planted_heads(n_positions: int = N_POSITIONS) -> dict:
    """The record: a description, one {"layer", "head", "role", "rule"} per head, and the constants."""
    heads = [{"layer": layer, "head": head, "role": ROLES[code],
              "rule": SPECIAL_RULES.get((layer, head), RULES[ROLES[code]])}
             for layer, row in enumerate(LAYOUT) for head, code in enumerate(row.split())]
    constants = {"n_positions": n_positions, "clock_levels": _clock_levels(n_positions), "seed": SEED,
                 "gap_logits": GAP, "local_offsets": list(LOCAL_OFFSETS), "long_range_offset": LONG_RANGE_OFFSET,
                 "long_range_fallback_key": LONG_RANGE_FALLBACK_KEY, "sink_norm": SINK_NORM,
                 "count_sink_weight": COUNT_SINK_WEIGHT, "counting_head": list(COUNT_HEAD),
                 "copying_head": list(COPY_HEAD), "predicting_head": list(PREDICT_HEAD),
                 "prediction_logit": PREDICTION_LOGIT}
    return {"description": DESCRIPTION, "synthetic": True, "heads": heads, "constants": constants}


def planted_weights(n_positions: int = N_POSITIONS) -> dict[str, np.ndarray]:
    """GPT2Model's state dict (float32 arrays): zero MLPs, LayerNorms that only rescale."""
    assert all(ROLES[LAYOUT[layer].split()[head]] == role for (layer, head), role in
               ((COPY_HEAD, "previous-token"), (COUNT_HEAD, "broadcaster"), (PREDICT_HEAD, "induction")))
    rng = np.random.default_rng(SEED)
    features = _Features(n_positions)
    weights = {"wte.weight": features.token_embeddings(rng), "wpe.weight": features.position_embeddings(),
               "ln_f.weight": features.ln_f_weight(), "ln_f.bias": np.zeros(N_EMBD)}
    for layer, row in enumerate(LAYOUT):
        reads = features.reads(layer)
        query, query_bias, key = (np.zeros((N_EMBD, N_EMBD)), np.zeros(N_EMBD), np.zeros((N_EMBD, N_EMBD)))
        value, out = np.zeros((N_EMBD, N_EMBD)), np.zeros((N_EMBD, N_EMBD))
        for head, code in enumerate(row.split()):
            columns = slice(head * HEAD_DIM, (head + 1) * HEAD_DIM)
            terms = _score_terms(ROLES[code], (layer, head), reads, features)
            assert len(terms) <= HEAD_DIM, (layer, head, len(terms))
            for column, (query_read, bias, key_read) in zip(range(columns.start, columns.stop), terms):
                # GPT-2 divides scores by sqrt(HEAD_DIM); the query carries that factor back.
                query[:, column], query_bias[column] = query_read * np.sqrt(HEAD_DIM), bias * np.sqrt(HEAD_DIM)
                key[:, column] = key_read
            for column, (value_read, write) in zip(range(columns.start, columns.stop),
                                                   _writes((layer, head), reads, features)):
                value[:, column], out[column] = value_read, write
        prefix = f"h.{layer}."
        weights.update({
            prefix + "ln_1.weight": features.ln_1_weight(), prefix + "ln_1.bias": np.zeros(N_EMBD),
            prefix + "attn.c_attn.weight": np.concatenate([query, key, value], axis=1),  # Conv1D: (in, out)
            prefix + "attn.c_attn.bias": np.concatenate([query_bias, np.zeros(2 * N_EMBD)]),
            prefix + "attn.c_proj.weight": out, prefix + "attn.c_proj.bias": np.zeros(N_EMBD),
            prefix + "ln_2.weight": np.ones(N_EMBD), prefix + "ln_2.bias": np.zeros(N_EMBD),
            prefix + "mlp.c_fc.weight": np.zeros((N_EMBD, 4 * N_EMBD)), prefix + "mlp.c_fc.bias": np.zeros(4 * N_EMBD),
            prefix + "mlp.c_proj.weight": np.zeros((4 * N_EMBD, N_EMBD)), prefix + "mlp.c_proj.bias": np.zeros(N_EMBD),
        })
    return {name: np.ascontiguousarray(array, dtype=np.float32) for name, array in weights.items()}


class _Features:
    """Where each feature lives in the residual stream, and how a layer reads it back after ln_1."""

    def __init__(self, n_positions: int):
        self.n_positions, self.levels = n_positions, _clock_levels(n_positions)
        widths = {**FEATURE_WIDTHS, "clock": 2 * self.levels}
        assert sum(widths.values()) <= N_EMBD // 2
        self.directions, start = {}, 0  # name -> (width, N_EMBD): orthonormal, each summing to zero
        for name, width in widths.items():
            pairs = np.arange(start, start + width)
            directions = np.zeros((width, N_EMBD))
            directions[np.arange(width), 2 * pairs] = 2 ** -0.5
            directions[np.arange(width), 2 * pairs + 1] = -2 ** -0.5
            self.directions[name], start = directions, start + width

    def angles(self, positions) -> np.ndarray:  # (T, levels): 2*pi*i/2^k for k = 1..levels
        return 2 * np.pi * np.asarray(positions, dtype=np.float64)[:, None] / 2.0 ** np.arange(1, self.levels + 1)

    def kernel(self, distances) -> np.ndarray:  # (T,): sum_k cos(2*pi*d/2^k), `levels` at d = 0, <= levels-2 else
        return np.cos(self.angles(distances)).sum(axis=1)

    def clock(self, positions) -> np.ndarray:  # (T, 2*levels): cos of every level, then sin
        angles = self.angles(positions)
        return np.concatenate([np.cos(angles), np.sin(angles)], axis=1)

    def token_embeddings(self, rng) -> np.ndarray:  # (VOCAB_SIZE, N_EMBD)
        codes = {}
        for name, width in (("token_a", TOKEN_A), ("token_b", TOKEN_B)):
            code = rng.standard_normal((VOCAB_SIZE, width))
            codes[name] = code / np.linalg.norm(code, axis=1, keepdims=True)
        return (np.sqrt(TOKEN_A_NORM2) * codes["token_a"] @ self.directions["token_a"]
                + np.sqrt(TOKEN_B_NORM2) * codes["token_b"] @ self.directions["token_b"])

    def position_embeddings(self) -> np.ndarray:  # (n_positions, N_EMBD)
        positions = np.arange(self.n_positions)
        slots = np.eye(3)[np.digitize(positions, [2, LONG_RANGE_OFFSET + 1])]  # 1 | 2..6 | 7+
        embeddings = (np.sqrt(SLOT_NORM2) * slots @ self.directions["slot"]
                      + np.sqrt(CLOCK_NORM2 / self.levels) * self.clock(positions) @ self.directions["clock"])
        embeddings[0] = SINK_NORM * self.directions["sink"][0]
        return embeddings

    def ln_1_weight(self) -> np.ndarray:  # (N_EMBD,): 1, but COUNT_GAIN on the count's two coordinates
        return np.where(self.directions["count"][0] != 0, COUNT_GAIN, 1.0)

    def ln_f_weight(self) -> np.ndarray:  # (N_EMBD,): the gain that makes the predicted token score PREDICTION_LOGIT
        """ln_f keeps only token_a: the LM head is the token embedding, so a position's logit for token u is
        ln_f(x) . wte[u], and token_a is where the predicting head writes. At a position where it found a token,
        x holds the position's own code (size sqrt(TOKEN_A_NORM2)) and PREDICTION_WRITE times that of the found
        token's."""
        write = PREDICTION_WRITE * np.sqrt(TOKEN_A_NORM2)
        norm2 = SLOT_NORM2 + CLOCK_NORM2 + TOKEN_A_NORM2 + TOKEN_B_NORM2 + PREVIOUS_NORM ** 2 + write ** 2
        scale = 1 / np.sqrt(norm2 / N_EMBD + LAYER_NORM_EPS)
        gain = PREDICTION_LOGIT / (scale * np.sqrt(TOKEN_A_NORM2) * write)
        return gain * (self.directions["token_a"] != 0).any(axis=0)

    def ln_scales(self, layer: int) -> tuple[float, float]:
        """ln_1's factor 1/sqrt(var + eps) at positions >= 1 and at position 0 (residual variance = norm^2/768)."""
        written = PREVIOUS_NORM ** 2 if layer > COPY_HEAD[0] else 0.0  # the count's write is negligible
        norm2 = SLOT_NORM2 + CLOCK_NORM2 + TOKEN_A_NORM2 + TOKEN_B_NORM2 + written
        sink_norm2 = SINK_NORM ** 2 + TOKEN_A_NORM2 + TOKEN_B_NORM2 + written
        return tuple(1 / np.sqrt(n2 / N_EMBD + LAYER_NORM_EPS) for n2 in (norm2, sink_norm2))

    def reads(self, layer: int) -> dict[str, np.ndarray]:
        """name -> (width, N_EMBD) rows r with r @ ln_1(x) = the feature's value in unit terms: the clock's cos
        and sin, a slot's 0/1, a token's unit code (1/100 of it at the sink), the count n (~0 at the sink)."""
        scale, sink_scale = self.ln_scales(layer)
        norms = {"slot": np.sqrt(SLOT_NORM2), "clock": np.sqrt(CLOCK_NORM2 / self.levels),
                 "token_a": np.sqrt(TOKEN_A_NORM2), "token_b": np.sqrt(TOKEN_B_NORM2),
                 "previous": PREVIOUS_NORM, "count": COUNT_NORM * COUNT_GAIN / COUNT_SINK_WEIGHT}
        reads = {name: self.directions[name] / (scale * norm) for name, norm in norms.items()}
        reads["sink"] = self.directions["sink"] / (sink_scale * SINK_NORM)
        # Position 0 has no clock of its own: its keys read position 0's clock off the sink direction.
        reads["clock"] = reads["clock"] + self.clock([0])[0][:, None] * reads["sink"]
        return reads


def _score_terms(role: str, where: tuple[int, int], reads: dict, features: _Features) -> list[tuple]:
    """A head's attention score as rank-1 terms (query read, query bias, key read): the score of query i for
    key j is the sum over terms of (query read . x_i + bias) * (key read . x_j), x = ln_1's output."""
    nothing = np.zeros(N_EMBD)
    if role == "broadcaster" and where == COUNT_HEAD:
        # Copies of the token (key 0's token is 1/100 as visible) score COUNT_MATCH; key 0 as much + log(999).
        return ([(query, 0.0, COUNT_MATCH * key) for query, key in zip(reads["token_b"], reads["token_b"])]
                + [(nothing, COUNT_MATCH + np.log(COUNT_SINK_WEIGHT), reads["sink"][0])])
    if role == "broadcaster":
        return [(nothing, GAP, reads["sink"][0])]
    if role == "diffuse":
        return []
    if role in ("diagonal", "previous-token", "local"):
        offsets = {"diagonal": (0,), "previous-token": (1,), "local": LOCAL_OFFSETS}[role]
        return _clock_terms(offsets, reads, features, _equal_shares(offsets, features))
    if role == "long-range":
        # Rows 1..6 (slots "1" and "2..6") get a bonus on key 1 (slot "1") big enough to beat the clock there.
        early_rows = reads["slot"][0] + reads["slot"][1]
        return (_clock_terms((LONG_RANGE_OFFSET,), reads, features)
                + [(_long_range_fallback(features) * early_rows, 0.0, reads["slot"][0])])
    if role == "duplicate-token":
        # Key j >= 1: TOKEN_MATCH * same token - COUNT_PENALTY * (copies counted at j). Key 0 bids as a copy
        # with GAP / COUNT_PENALTY fewer copies than the query: it beats a query that is the first copy by GAP
        # and loses to the first copy of a token seen before by COUNT_PENALTY - GAP.
        return ([(query, 0.0, TOKEN_MATCH * key) for query, key in zip(reads["token_b"], reads["token_b"])]
                + [(nothing, -COUNT_PENALTY, reads["count"][0]),
                   (-COUNT_PENALTY * reads["count"][0], TOKEN_MATCH + GAP, reads["sink"][0])])
    if role == "induction":
        # The copying head wrote token_a of key j's previous token into "previous" (its last row is a marker).
        return ([(query, 0.0, TOKEN_MATCH * key) for query, key in zip(reads["token_a"], reads["previous"][:TOKEN_A])]
                + [(nothing, INDUCTION_FALLBACK, reads["sink"][0])])
    raise AssertionError(f"no construction for role {role!r}")


def _clock_terms(offsets, reads: dict, features: _Features, weights=(1.0,)) -> list[tuple]:
    """2*levels terms scoring CLOCK_WEIGHT * sum_d weight_d * sum_k cos(2*pi*(i - d - j)/2^k), d the offsets."""
    levels = features.levels
    cos_read, sin_read = reads["clock"][:levels], reads["clock"][levels:]
    shift = features.angles(offsets)  # (offsets, levels)
    weights = np.asarray(weights)[:, None]
    cos_shift = (weights * np.cos(shift)).sum(axis=0)[:, None]  # (levels, 1)
    sin_shift = (weights * np.sin(shift)).sum(axis=0)[:, None]
    # cos(a - s) = cos a cos s + sin a sin s and sin(a - s) = sin a cos s - cos a sin s, a = the query's angle
    rotated_cos = CLOCK_WEIGHT * (cos_shift * cos_read + sin_shift * sin_read)
    rotated_sin = CLOCK_WEIGHT * (cos_shift * sin_read - sin_shift * cos_read)
    return [(query, 0.0, key) for query, key in zip(np.concatenate([rotated_cos, rotated_sin]), reads["clock"])]


def _equal_shares(offsets, features: _Features) -> np.ndarray:
    """Per-offset weights (largest 1) under which keys i-d score the same for every offset d. With one
    weight each, key i-2 would score kernel(0) + 2 kernel(1) against i-1's kernel(0) + kernel(1) + kernel(2):
    the clock's top level makes kernel(1) and kernel(2) differ by 1 - cos(2*pi/n_positions)."""
    offsets = np.asarray(offsets)
    scores = features.kernel((offsets[:, None] - offsets[None, :]).ravel()).reshape(len(offsets), len(offsets))
    weights = np.linalg.solve(scores, np.ones(len(offsets)))
    return weights / weights.max()


def _long_range_fallback(features: _Features) -> float:
    """The bonus that makes key 1 win rows 1..6 by GAP against the clock's own preference there."""
    best = 0.0
    for row in range(1, LONG_RANGE_OFFSET + 1):
        keys = np.arange(row + 1)
        score = CLOCK_WEIGHT * features.kernel(row - LONG_RANGE_OFFSET - keys)
        best = max(best, np.delete(score, LONG_RANGE_FALLBACK_KEY).max() - score[LONG_RANGE_FALLBACK_KEY])
    return best + GAP


def _writes(where: tuple[int, int], reads: dict, features: _Features) -> list[tuple]:
    """(value read, output row) per value dimension of the two heads that write to the residual stream."""
    if where == COUNT_HEAD:  # value 1 at every key but the sink: the share of attention off the sink
        return [(reads["slot"].sum(axis=0), COUNT_NORM * features.directions["count"][0])]
    if where == COPY_HEAD:  # the key's token_a code, plus a marker where the key is the sink
        # At the sink the code is read at 1/100 size; the marker makes up the rest, so that every position
        # gets a write of the same norm and the next layers' ln_1 scale stays one number.
        scale, sink_scale = features.ln_scales(where[0])
        marker = np.sqrt(1 - (sink_scale / scale) ** 2) * reads["sink"]
        value_reads = np.concatenate([reads["token_a"], marker])
        return list(zip(value_reads, PREVIOUS_NORM * features.directions["previous"]))
    if where == PREDICT_HEAD:  # the key's token_a code, written back as a token code PREDICTION_WRITE times as large
        write = PREDICTION_WRITE * np.sqrt(TOKEN_A_NORM2) * features.directions["token_a"]
        return list(zip(reads["token_a"], write))
    return []


def _clock_levels(n_positions: int) -> int:
    return int(np.ceil(np.log2(n_positions)))
