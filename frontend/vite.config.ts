import { defineConfig, loadEnv } from "vite";
import react from "@vitejs/plugin-react";

// The dashboard builds into the Go server's embedded folder; the binary
// serves it at /. `npm run dev` serves it on :3000 and proxies the API
// (VITE_API_URL, default http://localhost:8080; REACT_APP_API_URL, the
// legacy dashboard's name for it, works too).
export default defineConfig(({ mode }) => {
  const env = loadEnv(mode, process.cwd(), ["VITE_", "REACT_APP_"]);
  const api = env.VITE_API_URL || env.REACT_APP_API_URL || "http://localhost:8080";
  const origin = new URL(api).origin;
  // The dev server is the browser's origin (:3000); the API checks a
  // websocket's Origin against its own host, so the proxy presents the
  // API's origin, as the embedded dashboard does.
  const proxied = {
    target: api,
    changeOrigin: true,
    configure: (proxy: { on(ev: "proxyReq" | "proxyReqWs", f: (req: { setHeader(k: string, v: string): void }) => void): void }) => {
      proxy.on("proxyReq", (req) => req.setHeader("origin", origin));
      proxy.on("proxyReqWs", (req) => req.setHeader("origin", origin));
    },
  };
  return {
    plugins: [react()],
    build: {
      outDir: "../server/dashboard/dist",
      emptyOutDir: true,
      // Deterministic output: names carry content hashes only.
      sourcemap: false,
      chunkSizeWarningLimit: 1200,
    },
    server: {
      port: 3000,
      strictPort: true,
      proxy: {
        "/graphql": { ...proxied, ws: true },
        "/api": proxied,
        "/monitoring": proxied,
        "/playground": proxied,
        "/metrics": proxied,
      },
    },
    test: {
      environment: "node",
      include: ["src/**/*.test.{ts,tsx}"],
    },
  };
});
