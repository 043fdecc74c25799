"""The inference core: a `models/NAME/` directory in, every head's attention for a sentence out.

Imports numpy, onnxruntime and tokenizers only — never torch, transformers or optimum — so it runs on a
laptop without PyTorch. One `Engine` holds one onnxruntime session, shared by every thread (`run` is
thread-safe); `attend` allocates nothing shared.

    engine = Engine.load("models/gpt2")
    result = engine.attend("The trophy doesn't fit in the suitcase because it is too big.")
    result.attention.shape  # (L, H, T, T): layer, head, query, key
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from twelve_heads.errors import InputError, ModelError
from twelve_heads.modeldir import (BATCHABLE, BOS_TOKEN, GRAPH, HEAD_MASK, INPUT_IDS, INTERVENTION, PREDICT_GRAPH,
                                   REEXPORT_HINT, RESIDUAL, TOKENIZER, attention_output, intervenes, read_manifest,
                                   verify_files)

from .batcher import MicroBatcher
from .intervene import Predictor, head_mask, shared_initializers
from .memory import release_freed_memory
from .tokens import open_tokenizer, token_display

# The engine's defaults; the server's settings (server/config.py) start from these, so the engine used alone
# behaves as the server does.
MAX_TEXT_CHARS = 20_000  # refuse before tokenizing: even 1,024 GPT-2 tokens are rarely over ~10k characters
# English prose runs about 4.5 characters per GPT-2 token (the atlas corpus's narrative and long items: 4.7;
# dialogue: 3.8), so a refusal by characters can say roughly how much text the model's token limit allows.
ENGLISH_CHARS_PER_TOKEN = 4.5
# A sentence longer than this is long: its run hands onnxruntime's arena back when it ends (the caller then returns
# the memory to the system, release_freed_memory). The arena otherwise keeps the peak of the longest sentence ever
# run for the life of the process. Shorter runs keep it: reusing it spares every run its allocations.
LONG_SENTENCE_TOKENS = 256
LONG_RUN = ort.RunOptions()
LONG_RUN.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
BATCH_SENTENCES = 16  # run_batch's largest batch: benchmarks/bench_batch.py measures the choice
BATCH_ATTENTION_BYTES = 64 * 2**20  # ... and its padded attention at most this (GPT-2 small: 16 × 100 tokens)


@dataclass(frozen=True)
class Attention:
    """One sentence through the model: its tokens and every head's attention probabilities."""

    tokens: list[str]  # display strings, e.g. " world"; byte fragments of one character as "\\xf0\\x9f"
    ids: list[int]
    offsets: list[tuple[int, int]]  # character span of each token in the text; (0, 0) for a prepended BOS
    attention: np.ndarray  # (L, H, T, T) float32, rows sum to 1, zero above the diagonal


class Engine:
    def __init__(self, path: Path, manifest: dict, session: ort.InferenceSession, tokenizer: Tokenizer,
                 max_tokens: int, max_chars: int, long_sentence_tokens: int, predictor: Predictor | None = None,
                 shared: dict | None = None, weight_bytes: int = 0):
        self.path, self.manifest, self.session, self.tokenizer = path, manifest, session, tokenizer
        self.max_tokens, self.max_chars, self.long_sentence_tokens = max_tokens, max_chars, long_sentence_tokens
        self.output_names = [attention_output(layer) for layer in range(self.n_layer)]
        # Knocking heads out needs a graph with head_mask (exported since manifest version 2) and predict.onnx.
        self.predictor = predictor
        self.shared = shared or {}  # the embedding table both sessions read: must outlive them
        self.weight_bytes = weight_bytes  # its graphs and weights on disk: what it costs in memory, near enough
        self.all_heads = head_mask(self.n_layer, self.n_head)[None] if predictor else None  # (1, L, H) of ones
        self.batcher: MicroBatcher | None = None  # set by load(micro_batch=N): plain runs batched with concurrent ones

    name = property(lambda self: self.path.name)  # the directory is the identity; a copy may be renamed
    n_layer = property(lambda self: self.manifest["n_layer"])
    n_head = property(lambda self: self.manifest["n_head"])
    n_positions = property(lambda self: self.manifest["n_positions"])
    synthetic = property(lambda self: self.manifest["synthetic"])
    can_intervene = property(lambda self: self.predictor is not None)

    @classmethod
    def load(cls, path, max_tokens: int | None = None, max_chars: int = MAX_TEXT_CHARS, threads: int | None = None,
             long_sentence_tokens: int = LONG_SENTENCE_TOKENS, micro_batch: int = 0) -> "Engine":
        """Open `path` (a models/NAME directory); raise ModelError naming the file and the fix if anything is off.
        `micro_batch` > 1: concurrent plain runs of a batchable model share batches of up to that many
        (server/batcher.py)."""
        path = Path(path)
        if not path.is_dir():
            raise ModelError(f"model directory {path} does not exist; export one with `twelve-heads export`")
        manifest = read_manifest(path)
        intervention = manifest[INTERVENTION] if intervenes(manifest) else None
        extra = (PREDICT_GRAPH, intervention["embedding"]["file"]) if intervention else ()
        verify_files(path, manifest, (GRAPH, TOKENIZER, *extra))
        model_path = path / GRAPH
        shared = shared_initializers(path, manifest)
        session = open_session(model_path, threads, shared)
        predictor = None
        if intervention:
            predictor = Predictor(path / PREDICT_GRAPH,
                                  open_session(path / PREDICT_GRAPH, threads, shared, memory_pattern=False))
        release_freed_memory()
        check_graph(session, manifest, model_path, intervention is not None)
        tokenizer = open_tokenizer(path / TOKENIZER, manifest)
        probe_vocabulary(session, manifest, model_path)
        limit = manifest["n_positions"] if max_tokens is None else min(max_tokens, manifest["n_positions"])
        weight_bytes = sum((path / name).stat().st_size for name in (GRAPH, *extra))
        engine = cls(path, manifest, session, tokenizer, limit, max_chars, long_sentence_tokens, predictor, shared,
                     weight_bytes)
        if micro_batch > 1 and manifest.get(BATCHABLE) is True:
            engine.batcher = MicroBatcher(engine, micro_batch)
        return engine

    def attend(self, text: str, prepend_bos: bool = False) -> Attention:
        """Every head's attention for `text`; InputError (with what to do) when it cannot be computed."""
        return self.attend_ids(*self.tokenize(text, prepend_bos))

    def attend_ids(self, ids: list[int], offsets: list[tuple[int, int]], mask: np.ndarray | None = None) -> Attention:
        """`attend` for a sentence already tokenized (the server tokenizes first to decide whether it is long);
        `mask` (L, H) knocks out the heads where it is 0."""
        return Attention([self.display(i) for i in ids], ids, offsets, self.run(ids, mask))

    def attend_many(self, texts: list[str], prepend_bos: bool = False) -> list[Attention]:
        """`attend` for many texts at once, computed in batches (run_batch): for scoring a corpus."""
        if not isinstance(texts, list):
            raise InputError.wrong_type("texts", "a list of strings", texts)
        tokenized = [self.tokenize(text, prepend_bos) for text in texts]
        attentions = self.run_batch([ids for ids, _ in tokenized])
        return [Attention([self.display(i) for i in ids], ids, offsets, attention)
                for (ids, offsets), attention in zip(tokenized, attentions, strict=True)]

    def run(self, ids: list[int], mask: np.ndarray | None = None, residual: np.ndarray | None = None) -> np.ndarray:
        """(L, H, T, T) attention for token ids; `mask` (L, H) knocks out the heads where it is 0 (needs
        can_intervene); `residual` (T, n_embd), when given, receives the stream entering the last block. Each
        layer's output is written straight into its slice of one array: no per-layer arrays to concatenate, so
        a 1,024-token sentence costs one copy of 600 MB, not two. With a batcher, a run with every head joins
        the batch of whatever other threads are running (not a long one: it would cost its memory twice)."""
        if mask is None and self.batcher is not None and not self.is_long(len(ids)):
            check_batch([ids], self.manifest["vocab_size"], self.max_tokens)  # its own error, not its batch's
            attention, stream = self.batcher.run(ids)
            if residual is not None:
                residual[...] = stream
            return attention
        return self.run_padded([ids], None if mask is None else mask[None],
                               None if residual is None else residual[None])[:, 0]

    def run_batch(self, batch: list[list[int]]) -> list[np.ndarray]:
        """(L, H, T_i, T_i) attention for each sentence of token ids, in the order given.

        The sentences are run shortest first, up to BATCH_SENTENCES at a time, each group padded on the right
        to its longest: under the causal mask the padding cannot change a sentence's own rows, which are
        copied out. A group is also cut where its padded attention would exceed BATCH_ATTENTION_BYTES, so a
        batch of long sentences costs no more memory than running them one at a time. A model whose manifest
        does not say it is batchable (int8; exports from before batching) runs them one at a time."""
        return [attention for attention, _ in self.run_grouped(batch, residual=False)]

    def run_batch_with_residual(self, batch: list[list[int]]) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """`run_batch`, each sentence with its residual stream (T_i, n_embd) when the graph has that output."""
        return self.run_grouped(batch, residual=self.can_intervene)

    def run_grouped(self, batch: list[list[int]], residual: bool) -> list[tuple[np.ndarray, np.ndarray | None]]:
        check_batch(batch, self.manifest["vocab_size"], self.max_tokens)
        order = sorted(range(len(batch)), key=lambda index: len(batch[index]))
        results: list[tuple | None] = [None] * len(batch)
        long_run = False
        for group in self.groups([len(batch[index]) for index in order]):
            members = [order[position] for position in group]
            longest = max(len(batch[index]) for index in members)
            stream = np.empty((len(members), longest, self.manifest["n_embd"]), np.float32) if residual else None
            attention = self.run_padded([batch[index] for index in members], None, stream)  # (L, B, H, T, T)
            long_run |= self.is_long(attention.shape[3], attention.shape[1])
            for row, index in enumerate(members):
                n_tokens = len(batch[index])
                # A copy where the batch holds others: a view would keep the whole padded buffer alive (in a cache).
                own = attention[:, row, :, :n_tokens, :n_tokens]
                results[index] = (own.copy() if len(members) > 1 else own,
                                  None if stream is None else stream[row, :n_tokens].copy())
            del attention
        if long_run:
            release_freed_memory()
        return results

    def groups(self, lengths: list[int]) -> list[list[int]]:
        """Positions in `lengths` (ascending) cut into consecutive batches: at most BATCH_SENTENCES each, and
        no more padded attention than BATCH_ATTENTION_BYTES unless a sentence alone is that large."""
        most = BATCH_SENTENCES if self.manifest.get(BATCHABLE) is True else 1
        groups: list[list[int]] = []
        for position, n_tokens in enumerate(lengths):
            group = groups[-1] if groups else None
            if group is None or len(group) >= most or not self.fits_in_one_batch(len(group) + 1, n_tokens):
                groups.append([position])
            else:
                group.append(position)
        return groups

    def fits_in_one_batch(self, n_sentences: int, longest: int) -> bool:
        """Whether n_sentences padded to `longest` tokens stay within BATCH_ATTENTION_BYTES of attention."""
        per_token_pair = 4 * self.n_layer * self.n_head  # float32 bytes of one (query, key) over every head
        return n_sentences * longest ** 2 * per_token_pair <= BATCH_ATTENTION_BYTES

    def run_padded(self, batch: list[list[int]], masks: np.ndarray | None = None,
                   residual: np.ndarray | None = None) -> np.ndarray:
        """(L, B, H, T, T) attention of `batch`, each sentence padded on the right to the longest, T; `masks`
        (B, L, H) knock heads out per sentence, `residual` (B, T, n_embd) receives the stream entering the last
        block."""
        n_tokens = max(len(ids) for ids in batch)
        ids = np.zeros((len(batch), n_tokens), dtype=np.int64)  # token 0 as padding: any token would do
        for row, sentence in enumerate(batch):
            ids[row, :len(sentence)] = sentence
        attention = np.empty((self.n_layer, len(batch), self.n_head, n_tokens, n_tokens), dtype=np.float32)
        binding = self.session.io_binding()
        binding.bind_cpu_input(INPUT_IDS, ids)
        if self.all_heads is not None:
            every_head = np.repeat(self.all_heads, len(batch), axis=0)  # (B, L, H) of ones
            binding.bind_cpu_input(HEAD_MASK, every_head if masks is None else np.ascontiguousarray(masks, np.float32))
        for layer, name in enumerate(self.output_names):
            binding.bind_output(name, "cpu", 0, np.float32, list(attention.shape[1:]), attention[layer].ctypes.data)
        if residual is not None:
            binding.bind_output(RESIDUAL, "cpu", 0, np.float32, list(residual.shape), residual.ctypes.data)
        try:
            self.session.run_with_iobinding(binding, self.run_options(n_tokens, len(batch)))
        except Exception as err:  # onnxruntime's own types: the graph and its manifest disagree
            raise ModelError(f"{self.path / GRAPH} failed on a {n_tokens}-token sentence "
                             f"({str(err).splitlines()[0][:160]}); its manifest (n_positions "
                             f"{self.n_positions}, vocab_size {self.manifest['vocab_size']:,}) may not match the "
                             f"graph: {REEXPORT_HINT}") from None
        return attention

    def run_with_residual(self, ids: list[int], mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """`run`, and the residual stream entering the last block (T, n_embd), which predict.onnx starts from."""
        residual = np.empty((len(ids), self.manifest["n_embd"]), dtype=np.float32)
        return self.run(ids, mask, residual), residual

    def run_under_masks(self, ids: list[int], masks: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """`run_with_residual` of one sentence under each head mask of `masks` (B, L, H): one batched run when the
        graph is batchable (the weights are streamed once for all B), else one run per mask. Long runs go one at a
        time too: they are bound by compute, not by reading the weights, and a batch would double their peak."""
        if self.manifest.get(BATCHABLE) is not True or self.is_long(len(ids), len(masks)):
            return [self.run_with_residual(ids, mask) for mask in masks]
        residual = np.empty((len(masks), len(ids), self.manifest["n_embd"]), dtype=np.float32)
        attention = self.run_padded([ids] * len(masks), masks, residual)  # (L, B, H, T, T)
        # Copies of each row: a cached clean pass must not keep the ablated one's memory alive beside it.
        return [(np.ascontiguousarray(attention[:, row]), residual[row].copy()) for row in range(len(masks))]

    def is_long(self, n_tokens: int, n_sentences: int = 1) -> bool:
        """Whether a run of `n_sentences` padded to `n_tokens` is long: its memory is lent for the run, not kept
        (LONG_SENTENCE_TOKENS). A batch counts by its attention's size, as many (T, T) as one sentence that long."""
        return n_sentences * n_tokens ** 2 > self.long_sentence_tokens ** 2

    def run_options(self, n_tokens: int, n_sentences: int = 1) -> ort.RunOptions | None:
        """A long run's options (its memory handed back when it returns), or None for onnxruntime's defaults."""
        return LONG_RUN if self.is_long(n_tokens, n_sentences) else None

    def tokenize(self, text: str, prepend_bos: bool = False) -> tuple[list[int], list[tuple[int, int]]]:
        """Token ids and character spans of `text`; InputError when the model cannot read that many."""
        ids, offsets = self.encode(text, prepend_bos)
        if len(ids) > self.max_tokens:
            raise InputError(f"the sentence has {len(ids):,} tokens; this model reads at most {self.max_tokens:,}. "
                             "Shorten it")
        return ids, offsets

    def encode(self, text: str, prepend_bos: bool = False) -> tuple[list[int], list[tuple[int, int]]]:
        """`tokenize` without the token limit: what /api/tokens counts while the student types."""
        check_text(text, self.max_chars, self.max_tokens)
        encoding = self.tokenizer.encode(text)
        ids, offsets = list(encoding.ids), [tuple(span) for span in encoding.offsets]
        if prepend_bos:
            bos = self.manifest.get("bos_token_id")
            if bos is None:
                raise InputError(f"model {self.name!r} has no {BOS_TOKEN} token to prepend; turn prepend_bos off")
            ids, offsets = [bos] + ids, [(0, 0)] + offsets
        return ids, offsets

    def display(self, token_id: int) -> str:
        return token_display(self.tokenizer.id_to_token(token_id))


def check_text(text, max_chars: int, max_tokens: int) -> None:
    """Refuse text that cannot be a sentence before tokenizing it. The character limit only guards the tokenizer;
    the limit a student meets is the model's, in tokens, so the message speaks of that."""
    if not isinstance(text, str):
        raise InputError.wrong_type("text", "a string", text)
    if not text.strip():
        raise InputError("the text is empty; type a sentence to look at")
    if len(text) > max_chars:
        about = max(100, round(max_tokens * ENGLISH_CHARS_PER_TOKEN / 100) * 100)
        raise InputError(f"the text has {len(text):,} characters; this model reads at most {max_tokens:,} tokens "
                         f"(about {about:,} characters of English). Shorten it")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise InputError(f"the text has an invalid character at position {err.start} (a lone surrogate); "
                         "remove it") from None


def check_batch(batch, vocab_size: int, max_tokens: int) -> None:
    """A list of sentences, each a non-empty list of token ids this model has, none longer than it reads."""
    if not isinstance(batch, list):
        raise InputError.wrong_type("batch", "a list of sentences (lists of token ids)", batch)
    for number, ids in enumerate(batch):
        if not isinstance(ids, list):
            raise InputError.wrong_type(f"batch[{number}]", "a list of token ids", ids)
        if not ids:
            raise InputError(f"batch[{number}] has no tokens; every sentence needs at least one")
        if len(ids) > max_tokens:
            raise InputError(f"batch[{number}] has {len(ids):,} tokens; this model reads at most {max_tokens:,}. "
                             "Shorten it")
        for token in ids:
            if type(token) is not int or not 0 <= token < vocab_size:  # bool is an int subclass: not a token
                raise InputError(f"batch[{number}] holds {token!r}, not a token id of this model (a whole number "
                                 f"from 0 to {vocab_size - 1:,})")


def open_session(model_path: Path, threads: int | None, shared: dict | None = None,
                 memory_pattern: bool = True) -> ort.InferenceSession:
    """`shared`: {initializer name: OrtValue} that the session uses instead of loading its own copy.
    `memory_pattern` False: no planned block per input shape, which predict.onnx's arena would otherwise keep
    for each sentence length (its windows' logits tables are freed and reused within a run instead)."""
    options = ort.SessionOptions()
    options.enable_mem_pattern = memory_pattern
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: warnings about unused initializers are noise here
    # onnxruntime's threads spin between a session's kernels (they wake faster) and, by default, go on spinning
    # after its run: they then take the cores from the next session of this process (a knock-out runs the
    # attention graph, then predict.onnx) or from the next worker. Spinning stops when a run returns.
    options.add_session_config_entry("session.force_spinning_stop", "1")
    if threads:
        options.intra_op_num_threads = threads
    for name, value in (shared or {}).items():
        options.add_initializer(name, value)
    try:
        return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types for truncated or foreign files
        raise ModelError(f"{model_path} could not be loaded ({str(err).splitlines()[0][:200]}); "
                         f"{REEXPORT_HINT}") from None


def check_graph(session: ort.InferenceSession, manifest: dict, model_path: Path, intervention: bool) -> None:
    """The graph's inputs and outputs are what its manifest says: input_ids, and head_mask (with the residual
    output) when the manifest has an intervention section; every layer's attention with n_head heads."""
    inputs = {node.name for node in session.get_inputs()}
    expected = {INPUT_IDS, HEAD_MASK} if intervention else {INPUT_IDS}
    if inputs != expected:
        raise ModelError(f"{model_path} takes inputs {sorted(inputs)}, expected {sorted(expected)}; {REEXPORT_HINT}")
    outputs = {node.name: node.shape for node in session.get_outputs()}
    if intervention and RESIDUAL not in outputs:
        raise ModelError(f"{model_path} has no output {RESIDUAL!r}, which its manifest's intervention needs; "
                         f"{REEXPORT_HINT}")
    for layer in range(manifest["n_layer"]):
        name = attention_output(layer)
        if name not in outputs:
            raise ModelError(f"{model_path} has no output {name!r}, but its manifest says {manifest['n_layer']} "
                             f"layers; the graph must expose every layer's attention: {REEXPORT_HINT}")
        shape = outputs[name]
        if len(shape) != 4 or shape[1] != manifest["n_head"]:
            raise ModelError(f"{model_path} output {name!r} has shape {shape}, but the manifest says "
                             f"{manifest['n_head']} heads (expected [batch, {manifest['n_head']}, T, T]); "
                             f"{REEXPORT_HINT}")


def probe_vocabulary(session: ort.InferenceSession, manifest: dict, model_path: Path) -> None:
    """One token, the manifest's last id: cheap, and fails at start-up when the embedding table is smaller."""
    try:
        feeds = {INPUT_IDS: np.array([[manifest["vocab_size"] - 1]], dtype=np.int64)}
        if HEAD_MASK in {node.name for node in session.get_inputs()}:
            feeds[HEAD_MASK] = head_mask(manifest["n_layer"], manifest["n_head"])[None]
        session.run(None, feeds)
    except Exception:  # onnxruntime's own types
        raise ModelError(f"{model_path} has fewer token embeddings than the {manifest['vocab_size']:,} its manifest "
                         f"says; {REEXPORT_HINT}") from None
