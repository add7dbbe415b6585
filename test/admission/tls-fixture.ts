import { join } from "node:path";
import { runCommand } from "../support/command.js";

/** A self-signed certificate for 127.0.0.1, as cert-manager would put in the webhook's Secret. */
export async function selfSigned(dir: string, name: string): Promise<{ cert: string; key: string }> {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  await runCommand("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
    "-subj", `/CN=${name}`, "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert,
  ]);
  return { cert, key };
}

/** A client certificate with subject CN `commonName`, signed by the CA `ca` (from selfSigned), in files named `file`. */
export async function clientCertificate(dir: string, file: string, commonName: string, ca: { cert: string; key: string }): Promise<{ cert: string; key: string }> {
  const cert = join(dir, `${file}.crt`);
  const key = join(dir, `${file}.key`);
  const request = join(dir, `${file}.csr`);
  await runCommand("openssl", ["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", `/CN=${commonName}`, "-keyout", key, "-out", request]);
  await runCommand("openssl", ["x509", "-req", "-in", request, "-CA", ca.cert, "-CAkey", ca.key, "-CAcreateserial", "-days", "1", "-out", cert]);
  return { cert, key };
}
