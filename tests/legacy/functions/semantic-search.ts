/**
 * semantic-search: the all-MiniLM-L6-v2 sentence embedding of `query` (mean-pooled,
 * L2-normalised, 384 numbers). No authentication, no CORS headers, and, like the
 * original, no error handling: a body that is not JSON or a `query` that is not a
 * string throws, which main.ts answers with Supabase's 500 WORKER_ERROR.
 *
 * The original runs transformers.js, which cannot fetch its model here. The stand-in
 * asks the NumPy reference instead (tests/reference/minilm.py serve), started once on
 * first use and stopped with this process.
 */

const MINILM_SCRIPT = decodeURIComponent(
  new URL("../../reference/minilm.py", import.meta.url).pathname,
);
const DEFAULT_PYTHON_DEPS = decodeURIComponent(
  new URL("../../../.cache/python", import.meta.url).pathname,
);
const LISTENING = /listening on (http:\/\/127\.0\.0\.1:\d+)/;

let embedder: Promise<string> | undefined;
let child: Deno.ChildProcess | undefined;
let stopHooked = false;

function stopEmbedder(): void {
  try {
    child?.kill("SIGTERM");
  } catch {
    // already gone
  }
}

// Also stops the reference when this process ends: explicitly on SIGTERM/SIGINT and
// on a normal exit; and, whatever the cause (SIGKILL too), the reference exits itself
// when its stdin, a pipe from this process, closes.
function hookStop(): void {
  if (stopHooked) return;
  stopHooked = true;
  globalThis.addEventListener("unload", stopEmbedder);
  for (const [signal, code] of [["SIGTERM", 143], ["SIGINT", 130]] as const) {
    Deno.addSignalListener(signal, () => {
      stopEmbedder();
      Deno.exit(code);
    });
  }
}

/** Base URL of the running reference, starting it on a free port if needed. */
function embedderUrl(): Promise<string> {
  embedder ??= startEmbedder().catch((error) => {
    embedder = undefined; // the next request tries again
    throw error;
  });
  return embedder;
}

async function startEmbedder(): Promise<string> {
  hookStop();
  const spawned = new Deno.Command("python3", {
    args: [MINILM_SCRIPT, "serve", "--port", "0", "--stop-on-stdin-eof"],
    // EMBEDDING_MODEL_DIR, when set, passes through with the rest of the environment.
    env: { PYTHONPATH: Deno.env.get("PYTHON_DEPS") ?? DEFAULT_PYTHON_DEPS },
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  child = spawned;
  spawned.unref();
  spawned.status.then(() => {
    if (child === spawned) {
      child = undefined;
      embedder = undefined;
    }
  });

  const reader = spawned.stdout.getReader();
  const decoder = new TextDecoder();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) {
      throw new Error(
        "the embedding reference exited before listening (see stderr)",
      );
    }
    text += decoder.decode(value, { stream: true });
  }
  reader.releaseLock();
  spawned.stdout.pipeTo(new WritableStream()).catch(() => {});

  const url = LISTENING.exec(text)?.[1];
  if (!url) {
    stopEmbedder();
    throw new Error(
      `unexpected first line from the embedding reference: ${text}`,
    );
  }
  return url;
}

/** Stands in for transformers.js' `extractor(query, { pooling: "mean", normalize: true })`. */
async function extractor(query: string): Promise<{ data: Float32Array }> {
  const response = await fetch(`${await embedderUrl()}/embed`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ texts: [query] }),
  });
  if (!response.ok) {
    throw new Error(`embedding reference answered ${response.status}`);
  }
  const { embeddings } = await response.json();
  // transformers.js hands back float32 values; the reference computes in float64.
  return { data: Float32Array.from(embeddings[0] as number[]) };
}

export async function handler(req: Request): Promise<Response> {
  const { query } = await req.json();
  if (typeof query !== "string") {
    throw new TypeError("query must be a string");
  }
  const output = await extractor(query);
  return new Response(JSON.stringify({ embedding: Array.from(output.data) }), {
    headers: { "Content-Type": "application/json" },
  });
}
