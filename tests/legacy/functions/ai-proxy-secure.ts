// deno-lint-ignore-file no-explicit-any
/**
 * ai-proxy-secure: like ai-proxy without rate limit or usage log; answers the
 * provider's JSON as received. CORS *basic* plus the signature headers.
 * Errors: 500 {error}.
 */

import { corsHeaders as basicCorsHeaders, withCors } from "../shared/cors.ts";
import { requireUser } from "../shared/auth.ts";
import { getProvider } from "../shared/providers.ts";

const corsHeaders: Record<string, string> = {
  ...basicCorsHeaders,
  "Access-Control-Allow-Headers": `${
    basicCorsHeaders["Access-Control-Allow-Headers"]
  }, x-signature, x-timestamp, x-nonce`,
};

export const handler = withCors(
  corsHeaders,
  async (req: Request): Promise<Response> => {
    try {
      await requireUser(
        req,
        "Missing authorization header",
        "Invalid or expired token",
      );

      const { provider, action, messages, model, temperature, maxTokens } =
        await req.json();

      if (!provider || !action) {
        throw new Error("Missing required parameters: provider and action");
      }

      const config = getProvider(provider);
      if (!config || !config.apiKey) {
        throw new Error(`${provider} API key not configured`);
      }

      let url = config.endpoint;
      let requestBody: any;
      const headers: Record<string, string> = {
        "Content-Type": "application/json",
      };

      if (provider === "gemini") {
        url += `?key=${config.apiKey}`;
        requestBody = {
          contents: messages.map((msg: any) => ({
            role: msg.role === "assistant" ? "model" : "user",
            parts: [{ text: msg.content }],
          })),
        };
      } else if (provider === "claude") {
        headers["x-api-key"] = config.apiKey;
        headers["anthropic-version"] = "2023-06-01";
        requestBody = {
          model: model || config.defaultModel,
          max_tokens: maxTokens || 1024,
          messages: messages.filter((msg: any) => msg.role !== "system"),
        };
      } else {
        // The real OpenAI/DeepSeek APIs reject a request without a messages
        // array (the legacy then fails with a 500); fail the same way up front,
        // as gemini's map() and claude's filter() do.
        if (!Array.isArray(messages)) {
          throw new TypeError("messages must be an array");
        }
        headers["Authorization"] = `Bearer ${config.apiKey}`;
        requestBody = {
          model: model || config.defaultModel,
          messages,
          max_tokens: maxTokens || 1024,
          temperature: temperature || 0.7,
        };
      }

      const response = await fetch(url, {
        method: "POST",
        headers,
        body: JSON.stringify(requestBody),
      });

      if (!response.ok) {
        const errorText = await response.text();
        throw new Error(
          `${provider} API error: ${response.status} ${errorText}`,
        );
      }

      const data = await response.json();

      return new Response(JSON.stringify(data), {
        headers: { ...corsHeaders, "Content-Type": "application/json" },
      });
    } catch (error: any) {
      return new Response(
        JSON.stringify({ error: error.message || "Internal server error" }),
        {
          status: 500,
          headers: { ...corsHeaders, "Content-Type": "application/json" },
        },
      );
    }
  },
);
