/* The view in the URL: #text=…&model=…&layer=3&head=5&bos=1&sink=1, and in compare mode &b=…(&diff=1). The hash,
   not the query string, so a shared sentence never reaches a server log. `head` is present only while a head is
   focused; `b` (sentence B) only while comparing. */

export function readPermalink(hash) {
  const params = new URLSearchParams(hash.replace(/^#/, ""));
  const view = {};
  if (params.has("text")) view.text = params.get("text");
  if (params.get("model")) view.model = params.get("model");
  const layer = wholeNumber(params.get("layer"));
  if (layer !== null) view.layer = layer;
  const head = wholeNumber(params.get("head"));
  if (head !== null) view.head = head;
  view.focused = head !== null;
  view.prependBos = params.get("bos") === "1";
  view.sinkAware = params.get("sink") === "1";
  if (params.has("b")) {
    view.compare = { open: true, textB: params.get("b"), view: params.get("diff") === "1" ? "diff" : "side" };
  }
  return view;
}

/** The hash for a view; reading it back with readPermalink gives the same fields. */
export function permalinkHash({ text, model, layer, head, focused, prependBos, sinkAware, compare }) {
  const params = new URLSearchParams();
  params.set("text", text);
  if (model) params.set("model", model);
  params.set("layer", String(layer));
  if (focused) params.set("head", String(head));
  if (prependBos) params.set("bos", "1");
  if (sinkAware) params.set("sink", "1");
  if (compare?.open && compare.textB) {
    params.set("b", compare.textB);
    if (compare.view === "diff") params.set("diff", "1");
  }
  return `#${params.toString()}`;
}

// ---- pure helpers ----

function wholeNumber(value) {
  return value !== null && /^\d{1,4}$/.test(value) ? Number(value) : null;
}
