import { z } from "zod";
import { duration } from "./duration.js";

/** berth's mutating admission webhook (`/admission`); absent = off. See config/README.md. */
export const admissionSchema = z
  .object({
    listen: z
      .string()
      .regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, "must be HOST:PORT")
      .optional()
      .describe("HOST:PORT of the webhook's own HTTPS listener (the API server calls webhooks over TLS only). Absent: /admission is served on berth's main listener."),
    tlsCertFile: z.string().min(1).optional().describe("PEM certificate (chain) of the HTTPS listener; its names must cover the webhook Service's DNS name."),
    tlsKeyFile: z.string().min(1).optional().describe("PEM private key of the HTTPS listener."),
    clientCAFile: z
      .string()
      .min(1)
      .optional()
      .describe("PEM CA certificate(s): when set, the HTTPS listener takes only clients presenting a certificate it signed (the API server's, from its AdmissionConfiguration kubeconfig)."),
    clientNames: z
      .array(z.string().min(1))
      .default([])
      .describe("With clientCAFile: the client certificate's subject CN or a DNS name of its subjectAltName must be one of these. Empty: any certificate the CA signed."),
    registry: z
      .string()
      .regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/, "must be HOST or HOST:PORT")
      .optional()
      .describe("How nodes name berth in image references (e.g. localhost:5000 with the node-local DaemonSet): rewritten images become REGISTRY/PREFIX/REPO."),
    rewriteImages: z.boolean().default(true).describe("Rewrite images of mirrored registries to pull through berth (REGISTRY/PREFIX/REPO)."),
    pinDigests: z.boolean().default(true).describe("Resolve tags to digests through berth (which caches the manifest) and pin them: IMAGE:TAG@sha256:..."),
    failurePolicy: z
      .enum(["Ignore", "Fail"])
      .default("Ignore")
      .describe("Ignore: admit a pod whose tag cannot be resolved, unpinned, with a warning. Fail: refuse it."),
    resolveTimeout: duration("5s").describe("Longest wait for one tag's digest; keep it below the webhook's timeoutSeconds."),
    excludeNamespaces: z
      .array(z.string().min(1))
      .default(["kube-system"])
      .describe("Namespace globs whose objects are left untouched."),
    excludeImages: z
      .array(z.string().min(1))
      .default([])
      .describe("Globs over the normalised image name HOST/PATH (docker.io/library/nginx; * stays within one path component, ** crosses them) left untouched."),
    namespaceTenants: z
      .array(
        z
          .object({
            namespaces: z.array(z.string().min(1)).min(1).describe("Namespace globs."),
            tenant: z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, "must be a DNS label (as tenants[].name)").describe("The tenant pods of those namespaces resolve tags as."),
          })
          .strict(),
      )
      .default([])
      .describe("Which tenant a pod's namespace belongs to, first match wins; a namespace matching none is its own tenant (as a service-account token's is)."),
  })
  .strict()
  .superRefine((admission, ctx) => {
    if (admission.listen !== undefined) {
      for (const key of ["tlsCertFile", "tlsKeyFile"] as const) {
        if (admission[key] === undefined) ctx.addIssue({ code: "custom", path: [key], message: "required with admission.listen: the API server calls webhooks over HTTPS only" });
      }
    } else if (admission.tlsCertFile !== undefined || admission.tlsKeyFile !== undefined || admission.clientCAFile !== undefined) {
      ctx.addIssue({ code: "custom", path: ["listen"], message: "tlsCertFile, tlsKeyFile and clientCAFile need a listen address for the HTTPS listener" });
    }
    if (admission.clientNames.length > 0 && admission.clientCAFile === undefined) {
      ctx.addIssue({ code: "custom", path: ["clientNames"], message: "needs clientCAFile: names are checked on client certificates that CA signed" });
    }
    if (admission.rewriteImages && admission.registry === undefined) {
      ctx.addIssue({ code: "custom", path: ["registry"], message: "required when rewriteImages is true: the HOST:PORT nodes pull berth at" });
    }
  })
  .optional()
  .describe("Mutating admission webhook: routes pods' images through berth, pins digests, makes pull policies explicit.");

export type AdmissionConfig = NonNullable<z.output<typeof admissionSchema>>;
