/**
 * Compares two strings in time that depends on their lengths only, so that a
 * secret cannot be guessed a character at a time from response times.
 *
 * @example
 * ```ts
 * import { constantTimeEqual } from "./token.ts";
 * console.log(constantTimeEqual("secret", "secret")); // true
 * ```
 */
export function constantTimeEqual(given: string, expected: string): boolean {
  let diff = given.length ^ expected.length;
  for (let i = 0; i < expected.length; i++) {
    diff |= (given.charCodeAt(i) || 0) ^ expected.charCodeAt(i);
  }
  return diff === 0;
}

/**
 * Whether `request` carries `Authorization: Bearer <token>`. The scheme is
 * case-insensitive (RFC 9110 section 11.1; RFC 6750: "Bearer" 1*SP token).
 *
 * @example
 * ```ts
 * import { hasBearer } from "./token.ts";
 * const request = new Request("http://localhost/", { headers: { authorization: "Bearer s" } });
 * console.log(hasBearer(request, "s")); // true
 * ```
 */
export function hasBearer(request: Request, token: string): boolean {
  const header = request.headers.get("authorization") ?? "";
  const scheme = /^bearer +/i.exec(header);
  if (!scheme) return false;
  return constantTimeEqual(header.slice(scheme[0].length), token);
}
