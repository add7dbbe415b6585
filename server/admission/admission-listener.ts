import { readFile } from "node:fs/promises";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import type { TLSSocket } from "node:tls";
import { setTimeout as delay } from "node:timers/promises";
import express from "express";
import { ConfigError } from "../../config/load.js";
import type { Logger } from "../log.js";
import { failureStatus } from "./admission-review.js";
import { listenOn } from "../http/listen.js";

/** How often the certificate files are checked for a renewed pair (a cert-manager Secret update). */
const CERTIFICATE_CHECK_MS = 60_000;

export interface AdmissionListenerOptions {
  /** HOST:PORT; port 0 picks a free one. */
  listen: string;
  tlsCertFile: string;
  tlsKeyFile: string;
  /** When set, only clients with a certificate this CA signed (the API server's) are served. */
  clientCAFile?: string;
  /** With clientCAFile: the certificate's CN or a DNS subjectAltName must be one of these; empty = any. */
  clientNames?: readonly string[];
}

interface Certificate {
  cert: Buffer;
  key: Buffer;
  ca?: Buffer;
}

/**
 * The webhook's own HTTPS listener: the API server calls webhooks over TLS only. It serves
 * `/admission` alone, and picks up a renewed certificate and key (and client CA) without a
 * restart. With a client CA it is TLS client auth: a connection without a certificate that CA
 * signed fails its handshake, and one whose names are not listed is answered 403.
 */
export class AdmissionListener {
  private certificate: Certificate;
  private readonly checking: NodeJS.Timeout;

  private constructor(
    private readonly server: Server,
    private readonly options: AdmissionListenerOptions,
    certificate: Certificate,
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
    if (options.clientCAFile !== undefined && options.clientNames && options.clientNames.length > 0) app.use(clientNamed(options.clientNames, log));
    app.use(routes);
    app.use((req, res) => {
      res.status(404).json(failureStatus(404, `berth's webhook listener serves POST /admission only, not ${req.method} ${req.path}`));
    });
    let server: Server;
    try {
      server = createServer({ ...certificate, ...(certificate.ca ? { requestCert: true, rejectUnauthorized: true } : {}) }, app);
    } catch (err) {
      const files = options.clientCAFile ? `${options.tlsCertFile}, ${options.tlsKeyFile} and ${options.clientCAFile} are not a usable certificate, key and client CA` : `${options.tlsCertFile} and ${options.tlsKeyFile} are not a usable certificate and key`;
      throw new ConfigError(`admission: ${files}: ${(err as Error).message}`);
    }
    await listenOn(server, options.listen);
    const address = server.address() as AddressInfo;
    const url = `https://${address.family === "IPv6" ? `[${address.address}]` : address.address}:${address.port}`;
    log.info({ url }, "admission webhook serving over HTTPS");
    return new AdmissionListener(server, options, certificate, log, url);
  }

  /** Re-reads the certificate and key; a changed, usable pair serves new connections. True when it changed. */
  async reloadCertificate(): Promise<boolean> {
    try {
      const next = await readCertificate(this.options);
      if (next.cert.equals(this.certificate.cert) && next.key.equals(this.certificate.key) && sameBuffer(next.ca, this.certificate.ca)) return false;
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

async function readCertificate(options: AdmissionListenerOptions): Promise<Certificate> {
  const read = async (key: string, file: string) => {
    try {
      return await readFile(file);
    } catch (err) {
      throw new ConfigError(`admission.${key}: cannot read ${file}: ${(err as Error).message}`);
    }
  };
  const pair = { cert: await read("tlsCertFile", options.tlsCertFile), key: await read("tlsKeyFile", options.tlsKeyFile) };
  return options.clientCAFile === undefined ? pair : { ...pair, ca: await read("clientCAFile", options.clientCAFile) };
}

function sameBuffer(a: Buffer | undefined, b: Buffer | undefined): boolean {
  return a === undefined || b === undefined ? a === b : a.equals(b);
}

/** Answers 403 to a client whose verified certificate names none of `names` (CN or DNS subjectAltName). */
function clientNamed(names: readonly string[], log: Logger): express.RequestHandler {
  const allowed = new Set(names);
  return (req, res, next) => {
    const peer = (req.socket as TLSSocket).getPeerCertificate();
    const dnsNames = (peer.subjectaltname ?? "").split(", ").flatMap((entry) => (entry.startsWith("DNS:") ? [entry.slice(4)] : []));
    const presented = [peer.subject?.CN, ...dnsNames].filter((name): name is string => typeof name === "string");
    if (presented.some((name) => allowed.has(name))) {
      next();
      return;
    }
    log.warn({ presented }, "admission review refused: client certificate names none of admission.clientNames");
    res.status(403).json(failureStatus(403, `berth's webhook serves only clients named ${[...allowed].join(", ")}`));
  };
}
