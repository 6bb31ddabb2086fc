// deno-lint-ignore-file no-explicit-any
/**
 * ai-proxy: authenticated multi-provider proxy (gemini, openai, claude, deepseek).
 * CORS *basic*. Errors: 500 {error, details: stack}, 429 when the message
 * mentions "Rate limit".
 */

import { corsHeaders, withCors } from "../shared/cors.ts";
import { requireUser } from "../shared/auth.ts";
import { insertRow, selectSingle, upsertRow } from "../shared/db.ts";
import { getProvider } from "../shared/providers.ts";

// Rate limiting: allowed unless this minute's row already counts 60 requests.
async function checkRateLimit(userId: string): Promise<boolean> {
  const { data, error } = await selectSingle((db) =>
    db`select * from rate_limits
       where user_id = ${userId}
         and window_start >= ${new Date(Date.now() - 60000).toISOString()}`
  );
  if (error || !data) return true; // no row (or a lookup error): allow
  return data.requests_count < 60;
}

// Records this request in the current one-minute window. The count written is
// always 1, so every request resets the counter (the legacy defect: the limit
// never triggers).
async function updateRateLimit(userId: string): Promise<void> {
  const windowStart = new Date(Math.floor(Date.now() / 60000) * 60000);
  await upsertRow("rate_limits", {
    user_id: userId,
    window_start: windowStart.toISOString(),
    requests_count: 1,
    updated_at: new Date().toISOString(),
  }, ["user_id", "window_start"]);
}

async function logAPIUsage(
  userId: string,
  provider: string,
  model: string,
  tokensUsed: number,
): Promise<void> {
  await insertRow("api_usage_logs", {
    user_id: userId,
    provider,
    model,
    tokens_used: tokensUsed,
    request_timestamp: new Date().toISOString(),
    created_at: new Date().toISOString(),
  });
}

function formatMessagesForProvider(provider: string, messages: any): any {
  switch (provider) {
    case "gemini":
      return {
        contents: messages.map((msg: any) => ({
          role: msg.role === "assistant" ? "model" : "user",
          parts: [{ text: msg.content }],
        })),
      };
    case "claude":
      return {
        model: "claude-3-haiku-20240307",
        max_tokens: 1024,
        messages: messages.filter((msg: any) => msg.role !== "system"),
      };
    case "openai":
    case "deepseek":
      return {
        model: getProvider(provider)!.defaultModel,
        messages,
        max_tokens: 1024,
        temperature: 0.7,
      };
    default:
      return { messages };
  }
}

async function callProvider(provider: string, payload: any): Promise<any> {
  const config = getProvider(provider);
  if (!config || !config.apiKey) {
    throw new Error(`${provider} API key not configured`);
  }

  const headers: Record<string, string> = {
    "Content-Type": "application/json",
  };
  let url = config.endpoint;
  switch (provider) {
    case "gemini":
      url += `?key=${config.apiKey}`;
      break;
    case "claude":
      headers["x-api-key"] = config.apiKey;
      headers["anthropic-version"] = "2023-06-01";
      break;
    default:
      headers["Authorization"] = `Bearer ${config.apiKey}`;
  }

  const response = await fetch(url, {
    method: "POST",
    headers,
    body: JSON.stringify(payload),
  });

  if (!response.ok) {
    const errorText = await response.text();
    throw new Error(`${provider} API error: ${response.status} ${errorText}`);
  }

  return await response.json();
}

function extractContent(provider: string, response: any): string {
  switch (provider) {
    case "gemini":
      return response.candidates?.[0]?.content?.parts?.[0]?.text || "";
    case "claude":
      return response.content?.[0]?.text || "";
    case "openai":
    case "deepseek":
      return response.choices?.[0]?.message?.content || "";
    default:
      return "";
  }
}

export const handler = withCors(
  corsHeaders,
  async (req: Request): Promise<Response> => {
    try {
      const user = await requireUser(
        req,
        "Missing authorization header",
        "Invalid or expired token",
      );

      const {
        provider,
        action,
        messages,
        prompt,
        model,
        temperature,
        maxTokens,
      } = await req.json();

      if (!provider || !action) {
        throw new Error("Missing required parameters: provider and action");
      }

      if (!(await checkRateLimit(user.id))) {
        return new Response(
          JSON.stringify({
            error:
              "Rate limit exceeded. Please wait before making another request.",
          }),
          {
            status: 429,
            headers: { ...corsHeaders, "Content-Type": "application/json" },
          },
        );
      }
      await updateRateLimit(user.id);

      let payload: any;
      if (action === "chat" && messages) {
        payload = formatMessagesForProvider(provider, messages);
      } else if (action === "completion" && prompt) {
        payload = formatMessagesForProvider(provider, [
          { role: "user", content: prompt },
        ]);
      } else {
        throw new Error(`Unsupported action: ${action}`);
      }

      if (model) payload.model = model;
      if (temperature !== undefined) payload.temperature = temperature;
      if (maxTokens) payload.max_tokens = maxTokens;

      const response = await callProvider(provider, payload);
      const content = extractContent(provider, response);

      const estimatedTokens = Math.ceil(
        (content.length + (prompt || "").length) / 4,
      );
      await logAPIUsage(user.id, provider, model || "default", estimatedTokens);

      return new Response(
        JSON.stringify({
          data: response,
          content,
          provider,
          model: model || getProvider(provider)?.defaultModel,
        }),
        { headers: { ...corsHeaders, "Content-Type": "application/json" } },
      );
    } catch (error: any) {
      return new Response(
        JSON.stringify({
          error: error.message || "Internal server error",
          details: error.stack,
        }),
        {
          status: error.message?.includes("Rate limit") ? 429 : 500,
          headers: { ...corsHeaders, "Content-Type": "application/json" },
        },
      );
    }
  },
);
