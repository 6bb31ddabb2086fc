// deno-lint-ignore-file no-explicit-any
/**
 * auth-validation: server-side e-mail checks before sign-up. No
 * authentication; CORS *allow-list*.
 */

import { type JsonAnswer, withAllowList } from "../shared/cors.ts";

const ALLOWED_EMAIL_DOMAINS = [
  "@gmail.com",
  "@hotmail.com",
  "@outlook.com",
  "@yahoo.com",
  "@protonmail.com",
  "@icloud.com",
];

const DISPOSABLE_PROVIDERS = [
  "tempmail",
  "guerrillamail",
  "10minutemail",
  "mailinator",
  "throwaway",
];

const EMAIL_REGEX = /^[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\.[a-zA-Z]{2,}$/;

export const handler = withAllowList(
  async (req: Request, json: JsonAnswer): Promise<Response> => {
    try {
      const { email, action }: any = await req.json();

      if (!email || !action) {
        return json(
          { valid: false, error: "Missing required parameters" },
          400,
        );
      }

      if (!EMAIL_REGEX.test(email)) {
        return json({ valid: false, error: "Invalid email format" }, 400);
      }

      const emailLower = email.toLowerCase();
      const isDomainAllowed = ALLOWED_EMAIL_DOMAINS.some((domain) =>
        emailLower.endsWith(domain)
      );
      if (!isDomainAllowed) {
        return json({
          valid: false,
          error: `Email domain not allowed. Please use one of: ${
            ALLOWED_EMAIL_DOMAINS.join(", ")
          }`,
        }, 400);
      }

      if (action === "signup") {
        const isDisposable = DISPOSABLE_PROVIDERS.some((provider) =>
          emailLower.includes(provider)
        );
        if (isDisposable) {
          return json({
            valid: false,
            error: "Disposable email addresses are not allowed",
          }, 400);
        }

        if (email.length > 254) {
          return json(
            { valid: false, error: "Email address is too long" },
            400,
          );
        }
      }

      return json({ valid: true, message: "Email validation successful" });
    } catch {
      return json({ valid: false, error: "Validation service error" }, 500);
    }
  },
);
