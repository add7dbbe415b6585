import assert from "node:assert/strict";

interface OciErrors {
  errors: { code: string; message: string }[];
}

/** The message of berth's answer to an upstream it refused, which must be a 502 with an OCI error JSON body. */
export async function refusal(response: Response): Promise<string> {
  const text = await response.text();
  assert.equal(response.status, 502, text);
  const body = JSON.parse(text) as OciErrors;
  assert.equal(body.errors[0].code, "UNKNOWN");
  return body.errors[0].message;
}
