// Stand-in for `supabase.auth.getUser(jwt)`: the token must be an HS256 JWT
// signed with SUPABASE_JWT_SECRET, not expired, whose `sub` is a row of
// auth.users. Any failure comes back as `error` (the caller picks its message).

import { selectSingle } from "./db.ts";

export interface User {
  id: string;
  email: string | null;
}

export type GetUserResult = {
  data: { user: User | null };
  error: Error | null;
};

const encoder = new TextEncoder();
let cachedKey: { secret: string; key: CryptoKey } | undefined;

async function hmacKey(secret: string): Promise<CryptoKey> {
  if (cachedKey?.secret !== secret) {
    const key = await crypto.subtle.importKey(
      "raw",
      encoder.encode(secret),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["verify"],
    );
    cachedKey = { secret, key };
  }
  return cachedKey.key;
}

function base64UrlDecode(segment: string): Uint8Array<ArrayBuffer> {
  if (!/^[A-Za-z0-9_-]*$/.test(segment)) throw new Error("invalid base64url");
  const b64 = segment.replace(/-/g, "+").replace(/_/g, "/");
  const binary = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

function decodeJson(segment: string): Record<string, unknown> {
  const value = JSON.parse(new TextDecoder().decode(base64UrlDecode(segment)));
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new Error("not a JSON object");
  }
  return value;
}

async function verifyJwt(jwt: string): Promise<Record<string, unknown>> {
  const secret = Deno.env.get("SUPABASE_JWT_SECRET");
  if (!secret) throw new Error("SUPABASE_JWT_SECRET is not set");

  const parts = jwt.split(".");
  if (parts.length !== 3) throw new Error("malformed JWT");
  const [headerPart, payloadPart, signaturePart] = parts;

  const header = decodeJson(headerPart);
  if (header.alg !== "HS256") throw new Error("unsupported JWT algorithm");

  const valid = await crypto.subtle.verify(
    "HMAC",
    await hmacKey(secret),
    base64UrlDecode(signaturePart),
    encoder.encode(`${headerPart}.${payloadPart}`),
  );
  if (!valid) throw new Error("invalid JWT signature");

  const payload = decodeJson(payloadPart);
  if (typeof payload.exp !== "number" || payload.exp <= Date.now() / 1000) {
    throw new Error("JWT expired");
  }
  if (typeof payload.sub !== "string" || !payload.sub) {
    throw new Error("JWT has no subject");
  }
  return payload;
}

export async function getUser(jwt: string): Promise<GetUserResult> {
  try {
    const claims = await verifyJwt(jwt);
    const { data, error } = await selectSingle((db) =>
      db`select id, email from auth.users where id = ${claims.sub as string}`
    );
    if (error || !data) throw error ?? new Error("User not found");
    return { data: { user: { id: data.id, email: data.email } }, error: null };
  } catch (error) {
    return { data: { user: null }, error: error as Error };
  }
}

/**
 * The user of a request's `Authorization` header, as the AI functions check it:
 * throws `Error(missing)` without the header and `Error(invalid)` when getUser
 * finds no user.
 */
export async function requireUser(
  req: Request,
  missing: string,
  invalid: string,
): Promise<User> {
  const authHeader = req.headers.get("Authorization");
  if (!authHeader) {
    throw new Error(missing);
  }
  const { data: { user }, error } = await getUser(
    authHeader.replace("Bearer ", ""),
  );
  if (error || !user) {
    throw new Error(invalid);
  }
  return user;
}
