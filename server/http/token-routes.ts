import express, { type NextFunction, type Request, type Response } from "express";
import { parseAuthorization } from "../auth/authorization-header.js";
import { parseScopes } from "../auth/scope.js";
import { TokenRequestError, type Authenticated, type TokenService } from "../auth/token-service.js";
import type { Logger } from "../log.js";
import { NO_METRICS, type TokenMetrics } from "../metrics/registry-metrics.js";
import { sendJson } from "./responses.js";

/**
 * /token per the Docker token auth spec: GET with Basic credentials (or none, for anonymous
 * access) and repeated `scope`; POST with an OAuth2 form (password and refresh_token grants).
 * /token/jwks publishes the public keys that verify berth's tokens.
 */
export function createTokenRoutes(tokens: TokenService, log: Logger, metrics: TokenMetrics = NO_METRICS): express.Router {
  const router = express.Router();

  router.get("/token/jwks", (_req, res) => {
    res.setHeader("Cache-Control", "no-cache");
    sendJson(res, 200, tokens.jwks());
  });

  router.get(
    "/token",
    answer(tokens, log, metrics, async (req) => {
      tokens.checkService(first(req.query.service));
      const presented = parseAuthorization(req.headers.authorization);
      if (req.headers.authorization !== undefined && presented?.scheme !== "basic") {
        throw new TokenRequestError(401, "UNAUTHORIZED", "GET /token takes Basic credentials, or none for anonymous access");
      }
      const who = presented?.scheme === "basic" ? await tokens.authenticatePassword(req, presented.username, presented.password) : undefined;
      return { who, scopes: all(req.query.scope), offline: first(req.query.offline_token) === "true" };
    }),
  );

  const parseForm = express.urlencoded({ extended: false, limit: "64kb" });
  router.post(
    "/token",
    (req, res, next) =>
      parseForm(req, res, (err?: unknown) => {
        if (err === undefined) return next();
        const status = (err as { status?: number }).status ?? 400;
        refuse(req, res, tokens, log, metrics, new TokenRequestError(status === 413 ? 413 : 400, "UNSUPPORTED_VALUE", `unreadable form: ${(err as Error).message}`));
      }),
    answer(tokens, log, metrics, async (req) => {
      const form = req.is("application/x-www-form-urlencoded") ? (req.body as Record<string, unknown> | undefined) : undefined;
      if (!form) throw new TokenRequestError(400, "UNSUPPORTED_VALUE", "POST /token takes an application/x-www-form-urlencoded form");
      const field = (name: string) => first(form[name]);
      const required = (name: string) => {
        const value = field(name);
        if (value === undefined || value === "") throw new TokenRequestError(400, "MISSING_REQUIRED_FIELD", `missing ${name}`);
        return value;
      };
      const grantType = required("grant_type");
      tokens.checkService(required("service"));
      required("client_id");
      const accessType = field("access_type") ?? "online";
      if (accessType !== "online" && accessType !== "offline") throw new TokenRequestError(400, "UNSUPPORTED_VALUE", "access_type must be online or offline");
      let who: Authenticated;
      if (grantType === "password") who = await tokens.authenticatePassword(req, required("username"), required("password"));
      else if (grantType === "refresh_token") who = await tokens.authenticateRefreshToken(required("refresh_token"));
      else throw new TokenRequestError(400, "UNSUPPORTED_VALUE", "grant_type must be password or refresh_token");
      // A refresh grant answers with the same refresh token (OAuth2 spec of the Docker token service).
      return { who, scopes: [field("scope") ?? ""], offline: accessType === "offline" || grantType === "refresh_token" };
    }),
  );

  return router;
}

interface TokenAsk {
  who: Authenticated | undefined;
  scopes: string[];
  offline: boolean;
}

function answer(tokens: TokenService, log: Logger, metrics: TokenMetrics, read: (req: Request) => Promise<TokenAsk>) {
  return async (req: Request, res: Response, next: NextFunction) => {
    try {
      const ask = await read(req);
      const response = await tokens.issue(ask.who, parseScopes(ask.scopes), ask.offline);
      log.debug({ subject: ask.who?.principal.subject ?? "anonymous", scope: response.scope }, "issued token");
      metrics.issued();
      res.setHeader("Cache-Control", "no-store");
      res.setHeader("Pragma", "no-cache");
      sendJson(res, 200, response);
    } catch (err) {
      if (!(err instanceof TokenRequestError)) return next(err);
      refuse(req, res, tokens, log, metrics, err);
    }
  };
}

function refuse(req: Request, res: Response, tokens: TokenService, log: Logger, metrics: TokenMetrics, err: TokenRequestError): void {
  log.info({ method: req.method, status: err.status, reason: err.message }, "token request refused");
  metrics.refused(err.code);
  if (err.status === 401 && req.method === "GET") res.setHeader("WWW-Authenticate", `Basic realm="${tokens.service.replace(/["\\]/g, "\\$&")}"`);
  if (err.retryAfterSeconds !== undefined) res.setHeader("Retry-After", String(err.retryAfterSeconds));
  sendJson(res, err.status, { errors: [{ code: err.code, message: err.message }] });
}

function first(value: unknown): string | undefined {
  const one = Array.isArray(value) ? value[0] : value;
  return typeof one === "string" ? one : undefined;
}

function all(value: unknown): string[] {
  return (Array.isArray(value) ? value : [value]).filter((v): v is string => typeof v === "string");
}
