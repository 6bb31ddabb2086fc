// deno-lint-ignore-file no-explicit-any
/**
 * encryption: server-side AES-256-GCM with a PBKDF2-derived key.
 * Authenticated; CORS *allow-list*.
 *
 * Format: base64(IV[12] ‖ ciphertext ‖ tag[16]); key = PBKDF2-HMAC-SHA256(
 * ENCRYPTION_KEY, ENCRYPTION_SALT, 100000 iterations, 32 bytes).
 */

import { type JsonAnswer, withAllowList } from "../shared/cors.ts";
import { getUser } from "../shared/auth.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

async function deriveKey(
  password: string,
  salt: string,
  usage: KeyUsage,
): Promise<CryptoKey> {
  const keyMaterial = await crypto.subtle.importKey(
    "raw",
    encoder.encode(password),
    "PBKDF2",
    false,
    ["deriveBits", "deriveKey"],
  );
  return crypto.subtle.deriveKey(
    {
      name: "PBKDF2",
      salt: encoder.encode(salt),
      iterations: 100000,
      hash: "SHA-256",
    },
    keyMaterial,
    { name: "AES-GCM", length: 256 },
    false,
    [usage],
  );
}

function bytesToBase64(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

async function encryptData(
  plaintext: string,
  key: string,
  salt: string,
): Promise<string> {
  const derivedKey = await deriveKey(key, salt, "encrypt");
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const encrypted = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv },
    derivedKey,
    encoder.encode(plaintext),
  );

  const combined = new Uint8Array(iv.length + encrypted.byteLength);
  combined.set(iv);
  combined.set(new Uint8Array(encrypted), iv.length);
  return bytesToBase64(combined);
}

async function decryptData(
  encryptedData: string,
  key: string,
  salt: string,
): Promise<string> {
  // atob: forgiving base64 (ASCII whitespace ignored, padding optional).
  const combined = Uint8Array.from(atob(encryptedData), (c) => c.charCodeAt(0));
  const iv = combined.slice(0, 12);
  const encrypted = combined.slice(12);

  const derivedKey = await deriveKey(key, salt, "decrypt");
  const decrypted = await crypto.subtle.decrypt(
    { name: "AES-GCM", iv },
    derivedKey,
    encrypted,
  );
  return decoder.decode(decrypted);
}

export const handler = withAllowList(
  async (req: Request, json: JsonAnswer): Promise<Response> => {
    try {
      const authHeader = req.headers.get("Authorization");
      if (!authHeader) {
        return json({ error: "Missing authorization header" }, 401);
      }

      const token = authHeader.replace("Bearer ", "");
      const { data: { user }, error: authError } = await getUser(token);
      if (authError || !user) {
        return json({ error: "Invalid authentication token" }, 401);
      }

      const { action, data }: any = await req.json();
      if (!action || !data) {
        return json({ error: "Missing required parameters" }, 400);
      }

      const encryptionKey = Deno.env.get("ENCRYPTION_KEY");
      const encryptionSalt = Deno.env.get("ENCRYPTION_SALT");
      if (!encryptionKey || !encryptionSalt) {
        return json({ error: "Encryption service not configured" }, 503);
      }

      let result: string;
      if (action === "encrypt") {
        result = await encryptData(data, encryptionKey, encryptionSalt);
      } else if (action === "decrypt") {
        result = await decryptData(data, encryptionKey, encryptionSalt);
      } else {
        return json({ error: "Invalid action" }, 400);
      }

      return json({ result });
    } catch {
      return json({ error: "Encryption operation failed" }, 500);
    }
  },
);
