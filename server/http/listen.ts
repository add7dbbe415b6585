import type { Server } from "node:net";

/** Starts `server` listening on `HOST:PORT` (`[::1]:5000` too); rejects when it cannot (the port taken, say). */
export async function listenOn(server: Server, listen: string): Promise<void> {
  const index = listen.lastIndexOf(":");
  const host = listen.slice(0, index).replace(/^\[(.*)\]$/, "$1");
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(Number(listen.slice(index + 1)), host, () => {
      server.off("error", reject);
      resolve();
    });
  });
}
