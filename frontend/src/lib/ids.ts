/**
 * GraphQL ids are opaque and type-tagged (docs/graphql.md): base64 of
 * "Type:number", e.g. "VGFzazoz" for Task 3. The dashboard shows and links
 * the number, the one REST and the CLI use; typed arguments such as
 * task(id:) accept it as it is.
 */

/** idNumber is the row number inside a GraphQL id ("VGFzazoz" → "3"); an id that is not one is returned unchanged. */
export function idNumber(id: string): string {
  try {
    const [type, n] = atob(id).split(":");
    if (type && /^[A-Za-z]+$/.test(type) && n && /^[0-9]+$/.test(n)) return n;
  } catch {
    // not base64: already a number (or something else) as it is
  }
  return id;
}

/** nodeId is the GraphQL id of row n of type ("Model", "3" → "TW9kZWw6Mw=="). */
export function nodeId(type: string, n: string): string {
  return btoa(`${type}:${n}`);
}
