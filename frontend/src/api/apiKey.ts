// The API key the dashboard sends when the server has auth on. It lives in
// the browser's localStorage, entered on the System page.

const storageKey = "llmsched.apiKey";

function storage(): Storage | null {
  try {
    return typeof window !== "undefined" ? window.localStorage : null;
  } catch {
    return null;
  }
}

export const apiKey = {
  get(): string {
    return storage()?.getItem(storageKey) ?? "";
  },
  set(key: string): void {
    const s = storage();
    if (!s) return;
    if (key) s.setItem(storageKey, key);
    else s.removeItem(storageKey);
  },
};
