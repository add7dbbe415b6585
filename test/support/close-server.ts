import type { Server } from "node:http";

/** Stops an in-process server at once: no new connections, open ones (kept-alive too) cut. */
export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
