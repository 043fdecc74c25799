/* The view in the URL: #text=…&model=…&layer=3&head=5&bos=1&sink=1. The hash, not the query string, so a
   shared sentence never reaches a server log. `head` is present only while a head is focused. Each field is
   data; a feature module with something to share (knocked-out heads, say) adds its own with addPermalinkField.
   A value that is not one (layer=3.7) is left out of the view and named in view.linkIgnored.
   Pure (tests/js/permalink.test.mjs). */

const FIELDS = [
  { param: "text", read: (value, view) => { if (value !== null) view.text = value; },
    write: (view) => view.text },
  { param: "model", read: (value, view) => { if (value) view.model = value; }, write: (view) => view.model || null },
  { param: "layer", read: (value, view) => {
    if (wholeNumber(value) !== null) view.layer = wholeNumber(value);
    else if (value !== null) ignore(view, `layer “${value}” is not a layer number`);
  }, write: (view) => String(view.layer) },
  { param: "head", read: (value, view) => {
    view.focused = wholeNumber(value) !== null;
    if (view.focused) view.head = wholeNumber(value);
    else if (value !== null) ignore(view, `head “${value}” is not a head number`);
  }, write: (view) => (view.focused ? String(view.head) : null) },
  { param: "bos", read: (value, view) => { view.prependBos = value === "1"; }, write: (view) => flag(view.prependBos) },
  { param: "sink", read: (value, view) => { view.sinkAware = value === "1"; }, write: (view) => flag(view.sinkAware) },
];

/** Add a field: {param, read(value or null, view) sets the view's fields, write(view) → string or null}. */
export function addPermalinkField(field) {
  FIELDS.push(field);
}

export function readPermalink(hash) {
  const params = new URLSearchParams(hash.replace(/^#/, ""));
  const view = {};
  for (const field of FIELDS) field.read(params.get(field.param), view);
  return view;
}

/** The hash for a view; reading it back with readPermalink gives the same fields. */
export function permalinkHash(view) {
  const params = new URLSearchParams();
  for (const field of FIELDS) {
    const value = field.write(view);
    if (value !== null && value !== undefined) params.set(field.param, value);
  }
  return `#${params.toString()}`;
}

// ---- pure helpers ----

/** A value the view could not take: said in the page's link note (view.linkIgnored), never silently dropped. */
function ignore(view, why) {
  (view.linkIgnored ||= []).push(why);
}

function wholeNumber(value) {
  return value !== null && /^\d{1,4}$/.test(value) ? Number(value) : null;
}

function flag(on) {
  return on ? "1" : null;
}
