/**
 * Base64 decoding as strict as Go's: Node's decoder skips characters it does not know,
 * which would turn a corrupt credential file into a wrong password instead of an error.
 * Like Go, `\r` and `\n` are ignored anywhere.
 */

const PADDED = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const UNPADDED = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2,3})?$/;

/** `base64.StdEncoding.DecodeString`: padding required. */
export function decodeStdBase64(text: string): Buffer | undefined {
  const compact = text.replace(/[\r\n]/g, "");
  return PADDED.test(compact) ? Buffer.from(compact, "base64") : undefined;
}

/** `base64.RawStdEncoding.DecodeString`: no padding allowed. */
export function decodeRawStdBase64(text: string): Buffer | undefined {
  const compact = text.replace(/[\r\n]/g, "");
  return UNPADDED.test(compact) ? Buffer.from(compact, "base64") : undefined;
}
