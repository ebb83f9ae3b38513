import { isDown, useConnection } from "../api/connection";

/** ConnectionBanner tells when the API cannot be reached; it goes away by itself when the API is back. */
export function ConnectionBanner() {
  const c = useConnection();
  if (!isDown(c)) return null;
  return (
    <div className="banner banner-down" role="alert" data-testid="api-down">
      <strong>The API is unreachable.</strong> Live updates are paused; reconnecting
      {c.retries > 0 ? ` (attempt ${c.retries})` : ""}… The page recovers by itself when the server is back.
      {c.lastError ? <span className="banner-detail"> {c.lastError}</span> : null}
    </div>
  );
}
