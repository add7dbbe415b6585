import type express from "express";
import { ConfigError } from "../../config/load.js";
import type { BerthConfig } from "../../config/schema.js";
import type { AccessController } from "../auth/access.js";
import type { Logger } from "../log.js";
import type { Registry } from "../registry/registry.js";
import type { AdmissionListenerOptions } from "./admission-listener.js";
import { createAdmissionRoutes } from "./admission-routes.js";
import { AdmissionWebhook } from "./admission-webhook.js";
import { DigestResolver } from "./digest-resolver.js";
import { ImageRouting } from "./image-routing.js";

export interface AdmissionSetup {
  /** `POST /admission`. */
  routes: express.Router;
  /** The webhook's own HTTPS listener, when configured; else the routes go on berth's main app. */
  listener?: AdmissionListenerOptions;
}

/** The admission webhook `config.admission` asks for, over berth's registry; undefined when it is off. */
export function setUpAdmission(config: BerthConfig, registry: Registry, access: AccessController, log: Logger): AdmissionSetup | undefined {
  const admission = config.admission;
  if (!admission) return undefined;
  if (admission.listen === undefined && config.auth.mode === "token") {
    // The webhook resolves tags with berth's upstream credentials and no client token: on the
    // registry's own listener it would tell anyone the digests of private images.
    throw new ConfigError("admission.listen: required in auth.mode token, so /admission is not served on the registry's listener");
  }
  const admissionLog = log.child({ component: "admission" });
  const webhook = new AdmissionWebhook(admission, new ImageRouting(config.upstreams, admission.registry), new DigestResolver(registry, access, admission.resolveTimeout), admissionLog);
  const routes = createAdmissionRoutes(webhook, admissionLog);
  if (admission.listen === undefined) return { routes };
  return {
    routes,
    listener: {
      listen: admission.listen,
      tlsCertFile: admission.tlsCertFile!,
      tlsKeyFile: admission.tlsKeyFile!,
      ...(admission.clientCAFile !== undefined ? { clientCAFile: admission.clientCAFile, clientNames: admission.clientNames } : {}),
    },
  };
}
