// Turning GraphQL errors into messages for people. The server's errors carry
// extensions.code (BAD_USER_INPUT with extensions.field, NOT_FOUND,
// CONFLICT, QUEUE_FULL with retryAfter, UNAVAILABLE, UNAUTHENTICATED,
// FORBIDDEN, INTERNAL).

import type { CombinedError } from "urql";

export interface ApiError {
  message: string;
  code: string | null;
  /** The input field the server blames (BAD_USER_INPUT), e.g. "params.target_language". */
  field: string | null;
}

export function apiError(e: CombinedError | null | undefined): ApiError | null {
  if (!e) return null;
  if (e.networkError) {
    return { message: "The API cannot be reached. The dashboard retries by itself.", code: "NETWORK", field: null };
  }
  const first = e.graphQLErrors[0];
  if (!first) return { message: e.message, code: null, field: null };
  const ext = first.extensions as { code?: unknown; field?: unknown; retryAfter?: unknown };
  const code = typeof ext.code === "string" ? ext.code : null;
  const field = typeof ext.field === "string" ? ext.field : null;
  let message = first.message;
  if (code === "QUEUE_FULL" && typeof ext.retryAfter === "number") message += ` (retry in ${ext.retryAfter} s)`;
  if (code === "UNAUTHENTICATED") message += " — enter an API key on the System page.";
  return { message, code, field };
}
