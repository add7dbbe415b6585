import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { CredentialHelperError, getFromCredentialHelper, type CredentialHelperErrorCode } from "../../../server/upstream/credentials/credential-helper.js";
import { FakeHelpers } from "./fake-helpers.js";

const SECRET = "helper-secret-0123";

describe("docker credential helper get", () => {
  let helpers: FakeHelpers;
  before(async () => {
    helpers = await FakeHelpers.install();
    await helpers.add("basic", `printf '%s' "$*" > "$LOG.args"; cat > "$LOG"; echo '{"ServerURL":"x","Username":"robot","Secret":"${SECRET}"}'`);
    await helpers.add("token", `cat > /dev/null; echo '{"ServerURL":"x","Username":"<token>","Secret":"${SECRET}"}'`);
    await helpers.add("lowercase", `cat > /dev/null; echo '{"serverurl":"x","username":"robot","secret":"${SECRET}"}'`);
    await helpers.add("empty", `cat > /dev/null; echo '{"ServerURL":"x","Username":"","Secret":""}'`);
    await helpers.add("notfound", "cat > /dev/null; echo 'credentials not found in native keychain'; exit 1");
    await helpers.add("crash", `cat > /dev/null; echo 'oops ${SECRET}'; echo 'stderr ${SECRET}' >&2; exit 3`);
    await helpers.add("garbage", `cat > /dev/null; echo 'Username=${SECRET}'`);
    await helpers.add("number", `cat > /dev/null; echo '{"Username":"robot","Secret":12345}'`);
    await helpers.add("noread", `echo '{"Username":"robot","Secret":"${SECRET}"}'`);
    await helpers.add("slow", `(sleep 30; echo late) & echo $! > "$LOG.child"; sleep 30`);
    await helpers.add("chatty", "cat > /dev/null; yes '{}' | head -c 200000");
  });
  after(async () => {
    await helpers.remove();
  });

  const ask = (helper: string, timeoutMs = 5_000) => getFromCredentialHelper({ helper, serverUrl: "registry.example.com:5000", source: `credHelpers (docker-credential-${helper})`, timeoutMs });

  async function rejection(helper: string, code: CredentialHelperErrorCode, timeoutMs?: number): Promise<CredentialHelperError> {
    const error = await ask(helper, timeoutMs).then(
      () => assert.fail("resolved"),
      (err: unknown) => err,
    );
    assert.ok(error instanceof CredentialHelperError, String(error));
    assert.equal(error.code, code);
    assert.equal(error.helper, helper);
    assert.ok(!error.message.includes(SECRET), `leaked helper output: ${error.message}`);
    return error;
  }

  test("runs `docker-credential-<name> get` with the server URL on stdin and returns username and secret", async () => {
    const credential = await ask("basic");
    assert.equal(credential?.username, "robot");
    assert.equal(credential?.password, SECRET);
    assert.equal(credential?.identityToken, undefined);
    assert.equal(credential?.source, "credHelpers (docker-credential-basic)");
    assert.equal(await readFile(helpers.logPath("basic") + ".args", "utf8"), "get");
    assert.equal(await readFile(helpers.logPath("basic"), "utf8"), "registry.example.com:5000");
  });

  test("the username <token> means the secret is an identity token", async () => {
    const credential = await ask("token");
    assert.equal(credential?.identityToken, SECRET);
    assert.equal(credential?.username, undefined);
    assert.equal(credential?.password, undefined);
  });

  test("field names match case-insensitively, as Go's decoder does", async () => {
    assert.equal((await ask("lowercase"))?.password, SECRET);
  });

  test("the not-found answer and an empty credential mean no credential, not a failure", async () => {
    assert.equal(await ask("notfound"), undefined);
    assert.equal(await ask("empty"), undefined);
  });

  test("works with a helper that answers without reading stdin", async () => {
    assert.equal((await ask("noread"))?.password, SECRET);
  });

  test("a non-zero exit is a failure that quotes neither stdout nor stderr", async () => {
    const error = await rejection("crash", "CREDENTIAL_HELPER_FAILED");
    assert.equal(error.message, "docker-credential-crash get registry.example.com:5000: exited with code 3");
  });

  test("output that is not a JSON credential is a failure that does not quote it", async () => {
    await rejection("garbage", "CREDENTIAL_HELPER_BAD_OUTPUT");
    await rejection("number", "CREDENTIAL_HELPER_BAD_OUTPUT");
    await rejection("chatty", "CREDENTIAL_HELPER_BAD_OUTPUT");
  });

  test("a helper missing from PATH is reported as such", async () => {
    const error = await rejection("absent", "CREDENTIAL_HELPER_MISSING");
    assert.equal(error.message, "docker-credential-absent get registry.example.com:5000: not found on PATH");
  });

  test("a helper that does not answer in time is killed with everything it started", async () => {
    const started = Date.now();
    const error = await rejection("slow", "CREDENTIAL_HELPER_TIMEOUT", 300);
    assert.ok(Date.now() - started < 5_000, "did not wait for the helper's children");
    assert.match(error.message, /no answer within 300 ms/);
    const child = Number(await readFile(helpers.logPath("slow") + ".child", "utf8"));
    await sleep(100);
    assert.equal(await isRunning(child), false, "the helper's child survived");
  });
});

/** False once the process is gone or a zombie (killed, but not yet reaped by an init that may never reap). */
async function isRunning(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}
