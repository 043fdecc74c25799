"""The atlas's labelling as it was before it was made faster (frozen): each item labelled by `label_heads`, once
plain and once sink-aware, its labels and scores read back from the dicts it returns. The oracle for
tests/test_atlas_fast.py and the `--reference` contender of benchmarks/bench_atlas.py."""

from twelve_heads.server.atlas import BROADCASTER, LABEL_INDEX, Item, Tally, arena_induction_score
from twelve_heads.server.detector import previous_token_pattern, tl_similarity_score
from twelve_heads.server.heads import SCORE_NAMES, label_heads
from twelve_heads.server.scores import FIRST_SCORED_ROW, without_first_token


def add(tally: Tally, index: int, item: Item, attention, sink_aware: bool) -> None:
    """What Tally.add did: one item into one view's tally."""
    heads = label_heads(attention, item.ids, sink_aware=sink_aware)
    tally.labels[index] = [[LABEL_INDEX[head["label"]] for head in layer] for layer in heads]
    tally.scores[index] = [[[head["scores"][name] for name in SCORE_NAMES] for head in layer] for layer in heads]
    seen = attention
    if sink_aware:
        seen, has_mass = without_first_token(attention)  # as label_heads sees it
        nothing_left = ~has_mass[..., FIRST_SCORED_ROW:].any(axis=-1)  # (L, H)
        tally.labels[index][nothing_left] = BROADCASTER
    tally.previous[index] = tl_similarity_score(seen, previous_token_pattern(len(item.ids)))
    if item.probe_half:
        tally.induction[item.probe_index] = arena_induction_score(seen, item.probe_half, item.start)


def add_item(tallies: dict[bool, Tally], index: int, item: Item, attention) -> None:
    """What compute_atlas did with each item: both views, each labelled from the attention on its own."""
    for sink_aware, tally in tallies.items():
        add(tally, index, item, attention, sink_aware)
