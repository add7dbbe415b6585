import { readFile } from "node:fs/promises";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { setTimeout as delay } from "node:timers/promises";
import express from "express";
import { ConfigError } from "../../config/load.js";
import type { Logger } from "../log.js";
import { failureStatus } from "./admission-review.js";

/** How often the certificate files are checked for a renewed pair (a cert-manager Secret update). */
const CERTIFICATE_CHECK_MS = 60_000;

export interface AdmissionListenerOptions {
  /** HOST:PORT; port 0 picks a free one. */
  listen: string;
  tlsCertFile: string;
  tlsKeyFile: string;
}

/**
 * The webhook's own HTTPS listener: the API server calls webhooks over TLS only. It serves
 * `/admission` alone, and picks up a renewed certificate and key without a restart.
 */
export class AdmissionListener {
  private certificate: { cert: Buffer; key: Buffer };
  private readonly checking: NodeJS.Timeout;

  private constructor(
    private readonly server: Server,
    private readonly options: AdmissionListenerOptions,
    certificate: { cert: Buffer; key: Buffer },
    private readonly log: Logger,
    /** `https://HOST:PORT`. */
    readonly url: string,
  ) {
    this.certificate = certificate;
    this.checking = setInterval(() => void this.reloadCertificate(), CERTIFICATE_CHECK_MS).unref();
  }

  static async start(routes: express.Router, options: AdmissionListenerOptions, log: Logger): Promise<AdmissionListener> {
    const certificate = await readCertificate(options);
    const app = express();
    app.disable("x-powered-by");
    app.use(routes);
    app.use((req, res) => {
      res.status(404).json(failureStatus(404, `berth's webhook listener serves POST /admission only, not ${req.method} ${req.path}`));
    });
    let server: Server;
    try {
      server = createServer(certificate, app);
    } catch (err) {
      throw new ConfigError(`admission: ${options.tlsCertFile} and ${options.tlsKeyFile} are not a usable certificate and key: ${(err as Error).message}`);
    }
    const index = options.listen.lastIndexOf(":");
    const host = options.listen.slice(0, index).replace(/^\[(.*)\]$/, "$1");
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(Number(options.listen.slice(index + 1)), host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    const address = server.address() as AddressInfo;
    const url = `https://${address.family === "IPv6" ? `[${address.address}]` : address.address}:${address.port}`;
    log.info({ url }, "admission webhook serving over HTTPS");
    return new AdmissionListener(server, options, certificate, log, url);
  }

  /** Re-reads the certificate and key; a changed, usable pair serves new connections. True when it changed. */
  async reloadCertificate(): Promise<boolean> {
    try {
      const next = await readCertificate(this.options);
      if (next.cert.equals(this.certificate.cert) && next.key.equals(this.certificate.key)) return false;
      this.server.setSecureContext(next);
      this.certificate = next;
      this.log.info({ tlsCertFile: this.options.tlsCertFile }, "admission webhook certificate reloaded");
      return true;
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, "admission webhook certificate not reloaded; serving the previous one");
      return false;
    }
  }

  /** Stops accepting; reviews in flight get `graceMs` to be answered, then their connections are cut. */
  async close(graceMs: number): Promise<void> {
    clearInterval(this.checking);
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    const grace = new AbortController();
    await Promise.race([closed, delay(graceMs, undefined, { signal: grace.signal }).catch(() => undefined)]);
    grace.abort();
    this.server.closeAllConnections();
    await closed;
  }
}

async function readCertificate(options: AdmissionListenerOptions): Promise<{ cert: Buffer; key: Buffer }> {
  const read = async (key: string, file: string) => {
    try {
      return await readFile(file);
    } catch (err) {
      throw new ConfigError(`admission.${key}: cannot read ${file}: ${(err as Error).message}`);
    }
  };
  return { cert: await read("tlsCertFile", options.tlsCertFile), key: await read("tlsKeyFile", options.tlsKeyFile) };
}
