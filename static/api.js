/* Talking to the server: /api/models, /api/attention, /api/compare and /api/tokens. Every failure becomes an
   ApiError whose message is the server's own `{"error": ...}` text, or a plain sentence when the server could
   not be reached. */

const ATTENTION_URL = "/api/attention";
const MODELS_URL = "/api/models";
const TOKENS_URL = "/api/tokens";
const COMPARE_URL = "/api/compare";

export class ApiError extends Error {}

export function getModels(signal) {
  return requestJson(MODELS_URL, { signal });
}

/** POST the options (text, model, prepend_bos, sink_aware, format, layer) and return the parsed answer. */
export function getAttention(options, signal) {
  return postJson(ATTENTION_URL, options, signal);
}

/** POST two sentences (a, b, model, prepend_bos) and return both answers, their alignment and each head's change. */
export function getComparison(options, signal) {
  return postJson(COMPARE_URL, options, signal);
}

/** POST {text, model, prepend_bos}; the answer is {n_tokens, max_tokens}. */
export function countTokens(options, signal) {
  return postJson(TOKENS_URL, options, signal);
}

// ---- pure helpers ----

function postJson(url, body, signal) {
  return requestJson(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
    signal,
  });
}


async function requestJson(url, init) {
  let response;
  try {
    response = await fetch(url, init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError("the server did not answer; check that it is running and try again");
  }
  let body = null;
  try {
    body = await response.json();
  } catch (error) {
    if (error.name === "AbortError") throw error;
  }
  if (!response.ok) {
    const message = body && typeof body.error === "string" ? body.error : `the server answered ${response.status}`;
    throw new ApiError(message);
  }
  if (body === null) throw new ApiError("the server's answer was not JSON; try again");
  return body;
}
