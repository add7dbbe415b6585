import { parentPort } from "node:worker_threads";
import bcrypt from "bcryptjs";
import type { BcryptJob, BcryptReply } from "./bcrypt-pool.js";

/** A BcryptPool thread: one job at a time, synchronously, off the event loop that serves pulls. */
parentPort!.on("message", (job: BcryptJob) => {
  let reply: BcryptReply;
  try {
    reply = { ok: true, value: "hash" in job ? bcrypt.compareSync(job.password, job.hash) : bcrypt.hashSync(job.password, job.cost) };
  } catch (err) {
    reply = { ok: false, message: (err as Error).message };
  }
  parentPort!.postMessage(reply);
});
