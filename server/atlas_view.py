"""What /api/atlas serves from one view of an atlas: each head's usual job in words and, for GPT-2 small, what
published work says each head does, set beside the atlas ("agrees", "disagrees", or "not-checked" for roles
that attention patterns cannot show).
"""

import json
from functools import lru_cache
from pathlib import Path

from .atlas import WHY_NOT_HERE
from .heads import LABELS

LITERATURE_PATH = Path(__file__).resolve().parent / "data" / "gpt2_small_literature.json"
GPT2_SMALL_SOURCES = ("gpt2", "openai-community/gpt2")  # manifest "source" values whose weights are GPT-2 small's
# The atlas score that speaks to each pattern role, on the repeated random tokens (the probe).
PROBE_SCORES = {"previous-token": ("previous-token score", lambda head: head["detector"]["previous_token"]["probe"]),
                "duplicate-token": ("duplicate-token score", lambda head: head["detector"]["duplicate_token"]["probe"]),
                "induction": ("induction score", lambda head: head["induction_score"])}
CIRCUIT_ROLE = ("{role} is a role in a circuit (what the head writes and what that does to the prediction, found by "
                "ablating heads); attention patterns alone cannot show it")


def served_view(atlas: dict, view: dict, manifest: dict, model: str) -> dict:
    """The /api/atlas response for one view: the atlas's description of itself, why each role that needs something
    cannot show on a sentence that lacks it, the view, each head's `usually` sentence, and the literature (None
    unless the manifest's source is GPT-2 small)."""
    heads = [[{**head, "usually": usually(head, view)} for head in layer] for layer in view["heads"]]
    return {
        "model": model,
        "source": manifest.get("source"),
        "synthetic": manifest["synthetic"],
        **{key: atlas[key] for key in ("atlas_version", "labels", "score_names", "corpus", "probe", "rules")},
        "why_not_here": WHY_NOT_HERE,  # the server's rule today, not the file's: it speaks of the page's sentence
        **{key: view[key] for key in ("prepend_bos", "sink_aware", "items", "corpus_items", "probe_items",
                                      "can_show", "summary", "layers")},
        "heads": heads,
        "literature": literature(view, manifest.get("source")),
    }


def usually(head: dict, view: dict) -> str:
    """"previous-token on 96% of 239 items", or "no usual job: most often mixed, on 41% of 239 items"."""
    share = fraction(head["consensus_share"], head["consensus_of"])
    where = "" if head["consensus_of"] == view["items"] else " where it could show"
    if head["usual"]:
        return f"{head['consensus']} on {share}{where}"
    return f"no usual job: most often {head['consensus']}, on {share}{where}"


def fraction(share: float, of: int) -> str:
    """"96% of 239 items": never 100% unless every item, never 0% unless none."""
    count = round(share * of)
    percent = round(100 * share)
    percent = min(percent, 99) if count < of else percent
    percent = max(percent, 1) if count > 0 else percent
    return f"{percent}% of {of} item{'s' if of != 1 else ''}"


def literature(view: dict, source: str | None) -> dict | None:
    """What published work says about each head of GPT-2 small, with the atlas's verdict on each claim."""
    if source not in GPT2_SMALL_SOURCES:
        return None
    table = literature_table()
    n_layer, n_head = len(view["heads"]), len(view["heads"][0])
    heads = [[[] for _ in range(n_head)] for _ in range(n_layer)]
    verdicts = {"agrees": 0, "disagrees": 0, "not-checked": 0}
    for entry in table["heads"]:
        if not (entry["layer"] < n_layer and entry["head"] < n_head):
            continue
        verdict, comparison = compare(entry["role"], view["heads"][entry["layer"]][entry["head"]], view)
        cited = table["sources"][entry["source"]]
        heads[entry["layer"]][entry["head"]].append({
            "role": entry["role"], "note": entry["note"], "source": entry["source"], "citation": citation(cited),
            "title": cited["title"], "url": cited["url"], "checked": cited["checked"], "atlas": verdict,
            "comparison": comparison})
        verdicts[verdict] += 1
    return {"sources": table["sources"], "verdicts": verdicts, "heads": heads}


def compare(role: str, head: dict, view: dict) -> tuple[str, str]:
    """The atlas's verdict on one published claim about a head, and the sentence that says why."""
    if role not in LABELS:
        return "not-checked", CIRCUIT_ROLE.format(role=role)
    score_name, score_of = PROBE_SCORES[role]
    score = f"; {score_name} {score_of(head):.2f} on repeated random tokens"
    if head["consensus"] == role:
        return "agrees", f"the atlas agrees: {usually(head, view)}{score}"
    share = fraction(head["shares"][role], view["can_show"][role])
    where = "" if view["can_show"][role] == view["items"] else " where it could show"
    return "disagrees", f"the atlas disagrees: {usually(head, view)}; {role} on {share}{where}{score}"


def citation(source: dict) -> str:
    """"Wang et al. 2022" from "Kevin Wang, Alexandre Variengien, …"; a single author or a group as written."""
    authors = source["authors"]
    if "," in authors:
        authors = authors.split(",")[0].split()[-1] + " et al."
    return f"{authors} {source['year']}"


@lru_cache(maxsize=1)
def literature_table() -> dict:
    return json.loads(LITERATURE_PATH.read_text(encoding="utf-8"))
