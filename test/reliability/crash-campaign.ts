import { randomBytes, randomInt } from "node:crypto";
import { mkdir, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { BerthProcess } from "../support/berth-process.js";
import { OriginRegistry } from "../support/origin-registry.js";
import { Replicas } from "../support/replicas.js";
import { mirrorOf, ORIGIN_PREFIX } from "../mirror/real-origin.js";
import { configBlob, errorCode, getVerified, header, http, imageManifest, pushBlob, pushImage, trickle, type HttpAnswer } from "./registry-client.js";
import { ListObjectsV2Command, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { rawS3Client, swiftS3 } from "../support/swift-s3.js";
import { auditStore, filesystemView, s3View, sha256, type StoreAudit, type StoreView } from "./store-audit.js";

export interface CrashCampaignOptions {
  /** How many times berth is killed with SIGKILL. */
  kills: number;
  /** Every n-th kill lands in a content collection over a store seeded with many cached blobs. */
  collectionEvery?: number;
  /** How many cached blobs a collection round seeds (default 3000): the collection's length. */
  seededBlobs?: number;
  /** Progress lines (one per kill). */
  log?: (line: string) => void;
  /**
   * Run against this many replicas on one bucket and one Redis (test/support/replicas.ts),
   * each request sent to one of them at random, each kill landing on one of them at random;
   * default: one berth.
   */
  replicas?: number;
}

/** What a campaign did and saw; every kill was followed by a clean audit and a restart. */
export interface CrashCampaignReport {
  kills: number;
  /** Kills with each activity in flight: blob GETs from the origin through berth, upload PATCHes, upload PUTs, monolithic pushes, manifest PUTs, content collections. */
  inFlightAtKill: Record<Activity, number>;
  /** Temp files the crashes left in `_tmp/` (all gone after the restarts). */
  tempFilesLeft: number;
  acknowledgedBlobs: number;
  acknowledgedManifests: number;
  /** Interrupted upload sessions resumed from berth's Range after a restart and completed. */
  uploadsResumed: number;
  /** Interrupted sessions answered BLOB_UPLOAD_UNKNOWN or RANGE_INVALID (each while its completing PUT was in flight), then pushed anew. */
  uploadsFailedCleanly: number;
  /** Blob and manifest bodies served after restarts, each hashed and compared to its digest. */
  servedAndVerified: number;
  /** Blobs in the store at the end, each hashed by the final audit. */
  finalBlobs: number;
}

type Activity = "blobGet" | "uploadPatch" | "uploadPut" | "blobPost" | "manifestPut" | "collection";
const ACTIVITIES: Activity[] = ["blobGet", "uploadPatch", "uploadPut", "blobPost", "manifestPut", "collection"];

const KiB = 1024;
const MiB = 1024 * KiB;
const HOSTED_UPLOADS = "crash/uploads";
const HOSTED_IMAGES = "crash/images";
const MIRRORED = "crash/origin";
const SEEDED = "crash/seeded";

interface Acknowledged {
  blobs: { repository: string; digest: string }[];
  manifests: { repository: string; tag: string; digest: string }[];
}

interface UploadInFlight {
  location: string;
  data: Buffer;
  /** Offsets at which a chunk starts: where berth may say the session continues. */
  boundaries: number[];
  /** Bytes berth acknowledged (202 with Range). */
  acknowledged: number;
  completing: boolean;
}

interface OriginImage {
  tag: string;
  manifest: string;
  blobs: string[];
}

/**
 * Kills a real berth process (SIGKILL) at random moments while it fetches cold blobs from
 * a real origin (CNCF Distribution), takes chunked uploads streamed slowly, takes manifest
 * pushes and runs content collections, and after every kill checks what a crash must never
 * break: the store on disk is consistent (store-audit.ts), the restart clears every temp
 * file the crash left, content acknowledged before the kill is intact, interrupted uploads
 * resume from the Range berth reports (or fail cleanly), and every body served hashes to its
 * digest. Throws on the first violation.
 */
export async function runCrashCampaign(options: CrashCampaignOptions): Promise<CrashCampaignReport> {
  const origin = await OriginRegistry.start();
  let members: BerthProcess[] = [];
  let closeMembers = async () => {};
  try {
    const config = mirrorOf(origin, {}, { cache: { maxSize: "1KiB", collectInterval: "1s" } });
    let bucket: { bucket: string; prefix?: string } | undefined;
    if (options.replicas) {
      // A replica's fill in flight is no abandoned upload to the leader's collection: give it time.
      const replicas = await Replicas.start({ count: options.replicas, config, s3: { abandonedUploadAge: `${REPLICA_ABANDONED_UPLOAD_SECONDS}s` } });
      members = replicas.members;
      bucket = { bucket: replicas.bucket };
      closeMembers = () => replicas.close();
    } else {
      const berth = await BerthProcess.start({ config });
      members = [berth];
      bucket = berth.storage?.s3 as { bucket: string; prefix?: string } | undefined;
      closeMembers = () => berth.close();
    }
    const campaign = new Campaign(origin, members, bucket, options);
    try {
      return await campaign.run();
    } finally {
      campaign.close();
    }
  } finally {
    await closeMembers();
    await origin.close();
  }
}

/** With replicas, a multipart upload is abandoned after this long (a single berth: at once). */
const REPLICA_ABANDONED_UPLOAD_SECONDS = 20;

class Campaign {
  private readonly report: CrashCampaignReport = {
    kills: 0,
    inFlightAtKill: Object.fromEntries(ACTIVITIES.map((a) => [a, 0])) as Record<Activity, number>,
    tempFilesLeft: 0,
    acknowledgedBlobs: 0,
    acknowledgedManifests: 0,
    uploadsResumed: 0,
    uploadsFailedCleanly: 0,
    servedAndVerified: 0,
    finalBlobs: 0,
  };
  private readonly acknowledged: Acknowledged = { blobs: [], manifests: [] };
  private readonly originImages: OriginImage[] = [];
  private readonly inFlight = new Map<Activity, number>();
  private interrupted: UploadInFlight[] = [];
  private killed = false;
  private failures: Error[] = [];
  private pushes = 0;
  private s3Client?: S3Client;
  /** The replica this round kills. */
  private victim: BerthProcess;

  constructor(
    private readonly origin: OriginRegistry,
    private readonly members: BerthProcess[],
    /** The bucket, when the store is on S3. */
    private readonly bucket: { bucket: string; prefix?: string } | undefined,
    private readonly options: CrashCampaignOptions,
  ) {
    this.victim = members[0];
  }

  close(): void {
    this.s3Client?.destroy();
  }

  /** On S3 a tenth: each is two PUTs to seed and two DELETEs to evict, at Swift's tens of milliseconds a request. */
  private get seededBlobs(): number {
    const wanted = this.options.seededBlobs ?? 3000;
    return this.bucket ? Math.ceil(wanted / 10) : wanted;
  }

  /** Where the next request goes: one of the replicas at random (a client behind a Service). */
  private pick(): BerthProcess {
    return this.members[randomInt(this.members.length)];
  }

  private get base(): string {
    return this.pick().url;
  }

  private get replicated(): boolean {
    return this.members.length > 1;
  }

  async run(): Promise<CrashCampaignReport> {
    const every = this.options.collectionEvery ?? 5;
    for (let kill = 1; kill <= this.options.kills; kill++) {
      await this.crashOnce(kill, kill % every === 0);
    }
    if (this.bucket) await this.expectNoOldMultipartUploads();
    for (const member of this.members) await member.stop();
    const final = await auditStore(await this.view());
    assertConsistent(final, "after the last restart and a graceful stop");
    this.report.finalBlobs = final.blobs.size;
    return this.report;
  }

  private async crashOnce(kill: number, collection: boolean): Promise<void> {
    const acknowledgedBefore = { blobs: this.acknowledged.blobs.length, manifests: this.acknowledged.manifests.length };
    const image = await this.publishToOrigin(`r${kill}`);
    if (collection) {
      for (const member of this.members) await member.stop();
      await this.seedCachedBlobs();
      await Promise.all(this.members.map((member) => member.restart()));
    }
    this.killed = false;
    this.victim = this.members[randomInt(this.members.length)];
    const workloads = Promise.all([this.pullLoop(image), this.uploadLoop(), this.pushLoop()]);
    const collecting = collection ? await this.collectionStarted() : false;
    await sleep(collection ? randomInt(0, 150) : randomInt(20, 1500));
    const inFlight = ACTIVITIES.filter((a) => (this.inFlight.get(a) ?? 0) > 0);
    this.killed = true;
    await this.victim.kill();
    await workloads;
    if (this.failures.length > 0) throw this.failures[0];

    const audit = await auditStore(await this.view());
    const seededLeft = collection ? await this.seededLeft() : 0;
    if (collecting && seededLeft > 0) inFlight.push("collection");
    for (const activity of inFlight) this.report.inFlightAtKill[activity]++;
    this.report.kills++;
    this.report.tempFilesLeft += audit.tempFiles.length;
    assertConsistent(audit, `after kill ${kill}`);

    await this.victim.restart();
    // With replicas, what the crash left is aborted once abandoned (expectNoOldMultipartUploads).
    if (!this.replicated) await this.expectCrashWritesGone(kill, audit.tempFiles.map((f) => f.name));

    await this.resumeUploads();
    await this.verifyAcknowledged(acknowledgedBefore);
    await this.verifyOriginImage(image);
    this.options.log?.(
      `kill ${kill}${this.replicated ? ` (replica ${this.members.indexOf(this.victim)})` : ""}: in flight [${inFlight.join(", ")}], ${audit.tempFiles.length} temp files, ${audit.blobs.size} blobs audited` +
        (collection ? `, ${seededLeft}/${this.seededBlobs} seeded cached blobs left` : ""),
    );
  }

  /** The store as the audit reads it: berth's storage root, or its bucket on S3 runs. */
  private async view(): Promise<string | StoreView> {
    const s3 = this.bucket;
    if (!s3) return this.members[0].storageDir;
    this.s3Client ??= rawS3Client(await swiftS3());
    return s3View(this.s3Client, s3.bucket, s3.prefix ?? "");
  }

  /**
   * What the crash left half-written is gone after the restart: its temp files at once (start-up
   * clears them); on S3 its multipart uploads, which content collection (every second here,
   * abandonedUploadAge 0) aborts, within 30 s (Swift lists a new multipart upload after a while).
   */
  private async expectCrashWritesGone(kill: number, left: string[]): Promise<void> {
    for (const deadline = Date.now() + (this.bucket ? 30_000 : 0); ; await sleep(250)) {
      const view = await this.view();
      const now = new Set((await (typeof view === "string" ? filesystemView(view) : view).pendingWrites()).map((w) => w.name));
      const survivors = left.filter((name) => now.has(name));
      if (survivors.length === 0) return;
      if (Date.now() >= deadline) throw new Error(`kill ${kill}: the restart left the crash's half-written ${this.bucket ? "multipart uploads" : "temp files"} ${survivors.join(", ")}`);
    }
  }

  /**
   * On S3, berth's collection (every second, abandonedUploadAge 0) leaves no multipart upload
   * older than a minute: Swift lists a new upload only after a while, so some crashes' uploads
   * are found, and aborted, rounds later.
   */
  private async expectNoOldMultipartUploads(): Promise<void> {
    for (const deadline = Date.now() + 60_000; ; await sleep(1000)) {
      const view = (await this.view()) as StoreView;
      const old = (await view.pendingWrites()).filter((w) => Date.now() - w.modified.getTime() > 60_000);
      if (old.length === 0) return;
      if (Date.now() >= deadline) throw new Error(`multipart uploads older than a minute left: ${old.map((w) => w.name).join(", ")}`);
    }
  }

  /** Runs `work` counted as `activity` in flight. */
  private async tracked<T>(activity: Activity, work: () => Promise<T>): Promise<T> {
    this.inFlight.set(activity, (this.inFlight.get(activity) ?? 0) + 1);
    try {
      return await work();
    } finally {
      this.inFlight.set(activity, this.inFlight.get(activity)! - 1);
    }
  }

  /** Runs a workload until the kill; a failure before the kill is a finding, after it expected. */
  private async untilKilled(step: () => Promise<void>): Promise<void> {
    while (!this.killed) {
      try {
        await step();
      } catch (err) {
        if (!this.killed) this.failures.push(err as Error);
        return;
      }
    }
  }

  /**
   * Cold pulls: the fresh image first, then earlier ones (evicted again by the tiny cache cap).
   * With replicas, a pull from a replica the kill spares must end well, even when the killed
   * one was fetching the blob for the cluster.
   */
  private pullLoop(fresh: OriginImage): Promise<void> {
    let next: OriginImage = fresh;
    return this.untilKilled(async () => {
      const image = next;
      next = this.originImages[randomInt(this.originImages.length)];
      const member = this.pick();
      const base = `${member.url}/v2/${ORIGIN_PREFIX}/${MIRRORED}`;
      try {
        await getVerified(`${base}/manifests/${image.tag}`, image.manifest, { accept: "application/vnd.oci.image.manifest.v1+json" });
        await Promise.all(image.blobs.map((digest) => this.tracked("blobGet", () => getVerified(`${base}/blobs/${digest}`, digest))));
      } catch (err) {
        if (this.killed && member !== this.victim) this.failures.push(new Error(`a pull from a replica the kill spared failed: ${(err as Error).message}`));
        throw err;
      }
    });
  }

  /** Chunked uploads, each chunk a PATCH streamed slowly; an interrupted session is kept to resume. */
  private uploadLoop(): Promise<void> {
    return this.untilKilled(async () => {
      const data = randomBytes(randomInt(MiB, 3 * MiB));
      const started = await http(`${this.base}/v2/${HOSTED_UPLOADS}/blobs/uploads/`, { method: "POST" });
      expectStatus(started, 202, "POST upload");
      const upload: UploadInFlight = { location: header(started, "location")!, data, boundaries: [0], acknowledged: 0, completing: false };
      this.interrupted.push(upload);
      const chunk = randomInt(256 * KiB, 768 * KiB);
      for (let start = 0; start < data.length; start += chunk) {
        const piece = data.subarray(start, start + chunk);
        upload.boundaries.push(start + piece.length);
        const patched = await this.tracked("uploadPatch", () =>
          http(`${this.base}${upload.location}`, {
            method: "PATCH",
            headers: { "content-type": "application/octet-stream", "content-range": `${start}-${start + piece.length - 1}`, "content-length": piece.length },
            body: trickle(piece, 32 * KiB, 4),
          }),
        );
        expectStatus(patched, 202, "PATCH chunk");
        upload.acknowledged = start + piece.length;
      }
      upload.completing = true;
      const completed = await this.tracked("uploadPut", () => http(`${this.base}${upload.location}?digest=${sha256(data)}`, { method: "PUT" }));
      expectStatus(completed, 201, "PUT upload");
      this.interrupted = this.interrupted.filter((u) => u !== upload);
      this.acknowledge({ repository: HOSTED_UPLOADS, digest: sha256(data) });
    });
  }

  /** Image pushes: config and layer in one POST each, then the manifest under a fresh tag. */
  private pushLoop(): Promise<void> {
    return this.untilKilled(async () => {
      const n = ++this.pushes;
      const config = configBlob(`crash-${n}`);
      const layer = randomBytes(randomInt(16 * KiB, 128 * KiB));
      for (const blob of [config, layer]) {
        expectStatus(await this.tracked("blobPost", () => pushBlob(this.base, HOSTED_IMAGES, blob)), 201, "POST blob");
        this.acknowledge({ repository: HOSTED_IMAGES, digest: sha256(blob) });
      }
      const manifest = imageManifest({ digest: sha256(config), size: config.length }, [{ digest: sha256(layer), size: layer.length }]);
      const tag = `t${n}`;
      const put = await this.tracked("manifestPut", () =>
        http(`${this.base}/v2/${HOSTED_IMAGES}/manifests/${tag}`, {
          method: "PUT",
          headers: { "content-type": "application/vnd.oci.image.manifest.v1+json", "content-length": manifest.length },
          body: trickle(manifest, 64, 5),
        }),
      );
      expectStatus(put, 201, "PUT manifest");
      if (header(put, "docker-content-digest") !== sha256(manifest)) throw new Error(`PUT manifest ${tag}: wrong Docker-Content-Digest`);
      this.acknowledged.manifests.push({ repository: HOSTED_IMAGES, tag, digest: sha256(manifest) });
      this.report.acknowledgedManifests++;
    });
  }

  private acknowledge(blob: { repository: string; digest: string }): void {
    this.acknowledged.blobs.push(blob);
    this.report.acknowledgedBlobs++;
  }

  /**
   * Continues every interrupted session from the offset berth reports. A session may only be
   * unknown, or its data shorter than acknowledged, when its completing PUT was in flight
   * (completion moves the data into the store before it removes the session).
   */
  private async resumeUploads(): Promise<void> {
    const sessions = this.interrupted;
    this.interrupted = [];
    for (const upload of sessions) {
      const digest = sha256(upload.data);
      const status = await http(`${this.base}${upload.location}`);
      if (status.status === 404 && errorCode(status) === "BLOB_UPLOAD_UNKNOWN" && upload.completing) {
        await this.pushAnew(upload.data);
        continue;
      }
      expectStatus(status, 204, `upload status of ${upload.location}`);
      const range = /^0-(\d+)$/.exec(header(status, "range") ?? "");
      if (!range) throw new Error(`upload status of ${upload.location}: Range ${header(status, "range")}`);
      const offset = range[1] === "0" && !upload.boundaries.includes(1) ? 0 : Number(range[1]) + 1;
      if (!upload.boundaries.includes(offset)) throw new Error(`upload ${upload.location} resumes at ${offset}, which is no chunk boundary: a torn chunk was kept`);
      if (offset < upload.acknowledged && !upload.completing) throw new Error(`upload ${upload.location} lost acknowledged bytes: ${offset} < ${upload.acknowledged}`);
      if (offset < upload.data.length) {
        const rest = upload.data.subarray(offset);
        const patched = await http(`${this.base}${upload.location}`, {
          method: "PATCH",
          headers: { "content-type": "application/octet-stream", "content-range": `${offset}-${upload.data.length - 1}`, "content-length": rest.length },
          body: rest,
        });
        if (patched.status === 416 && errorCode(patched) === "RANGE_INVALID" && upload.completing) {
          await this.pushAnew(upload.data);
          continue;
        }
        expectStatus(patched, 202, `resumed PATCH of ${upload.location}`);
      }
      expectStatus(await http(`${this.base}${upload.location}?digest=${digest}`, { method: "PUT" }), 201, `resumed PUT of ${upload.location}`);
      this.report.uploadsResumed++;
      this.acknowledge({ repository: HOSTED_UPLOADS, digest });
    }
  }

  private async pushAnew(data: Buffer): Promise<void> {
    expectStatus(await pushBlob(this.base, HOSTED_UPLOADS, data), 201, "POST blob after a failed resume");
    this.report.uploadsFailedCleanly++;
    this.acknowledge({ repository: HOSTED_UPLOADS, digest: sha256(data) });
  }

  /** What this kill's round acknowledged, and a sample of everything before. */
  private async verifyAcknowledged(before: { blobs: number; manifests: number }): Promise<void> {
    const blobs = [...this.acknowledged.blobs.slice(before.blobs), ...sample(this.acknowledged.blobs.slice(0, before.blobs), 8)];
    const manifests = [...this.acknowledged.manifests.slice(before.manifests), ...sample(this.acknowledged.manifests.slice(0, before.manifests), 4)];
    for (const { repository, digest } of blobs) await this.verified(`/v2/${repository}/blobs/${digest}`, digest);
    for (const { repository, tag, digest } of manifests) {
      await this.verified(`/v2/${repository}/manifests/${tag}`, digest);
      await this.verified(`/v2/${repository}/manifests/${digest}`, digest);
    }
  }

  /** The kill's origin image pulls through berth whole, whatever state its fill was cut in. */
  private async verifyOriginImage(image: OriginImage): Promise<void> {
    await this.verified(`/v2/${ORIGIN_PREFIX}/${MIRRORED}/manifests/${image.tag}`, image.manifest);
    for (const digest of image.blobs) await this.verified(`/v2/${ORIGIN_PREFIX}/${MIRRORED}/blobs/${digest}`, digest);
  }

  private async verified(path: string, digest: string): Promise<void> {
    await getVerified(`${this.base}${path}`, digest, { accept: "application/vnd.oci.image.manifest.v1+json" });
    this.report.servedAndVerified++;
  }

  /** A fresh image at the origin, so the kill's first pull is cold: config, two layers of 1–6 MiB, manifest. */
  private async publishToOrigin(tag: string): Promise<OriginImage> {
    const config = configBlob(`origin-${tag}`);
    const layers = [randomBytes(randomInt(MiB, 6 * MiB)), randomBytes(randomInt(MiB, 6 * MiB))];
    const manifest = await pushImage(this.origin.url, MIRRORED, tag, config, layers);
    const image = { tag, manifest: sha256(manifest), blobs: [config, ...layers].map(sha256) };
    this.originImages.push(image);
    return image;
  }

  /**
   * Tops the (stopped) berth's store up to `seededBlobs` small cached blobs, as a mirror leaves
   * them, so that the next content collection (cap 1 KiB) has thousands of evictions to do.
   */
  private async seedCachedBlobs(): Promise<void> {
    if (this.bucket) return this.seedCachedObjects();
    const root = this.members[0].storageDir;
    const links = join(root, "mirrors", ORIGIN_PREFIX, SEEDED, "_layers", "sha256");
    await mkdir(links, { recursive: true });
    for (let i = await this.seededLeft(); i < this.seededBlobs; i++) {
      const bytes = randomBytes(512);
      const hex = sha256(bytes).slice("sha256:".length);
      await mkdir(join(root, "blobs", "sha256", hex.slice(0, 2)), { recursive: true });
      await writeFile(join(root, "blobs", "sha256", hex.slice(0, 2), hex), bytes);
      await writeFile(join(links, hex), "");
    }
  }

  /** seedCachedBlobs on S3: the same objects, put straight into the (stopped) berth's bucket, 16 at a time. */
  private async seedCachedObjects(): Promise<void> {
    const s3 = this.bucket!;
    this.s3Client ??= rawS3Client(await swiftS3());
    const client = this.s3Client;
    const key = (path: string) => `${s3.prefix ?? ""}${path}`;
    let left = this.seededBlobs - (await this.seededLeft());
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        for (; left > 0; left--) {
          const bytes = randomBytes(512);
          const hex = sha256(bytes).slice("sha256:".length);
          await client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key(`blobs/sha256/${hex.slice(0, 2)}/${hex}`), Body: bytes }));
          await client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key(`mirrors/${ORIGIN_PREFIX}/${SEEDED}/_layers/sha256/${hex}`), Body: "" }));
        }
      }),
    );
  }

  private async seededLeft(): Promise<number> {
    const s3 = this.bucket;
    if (s3) {
      this.s3Client ??= rawS3Client(await swiftS3());
      const prefix = `${s3.prefix ?? ""}mirrors/${ORIGIN_PREFIX}/${SEEDED}/_layers/sha256/`;
      let count = 0;
      let token: string | undefined;
      do {
        const page = await this.s3Client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: prefix, ...(token ? { ContinuationToken: token } : {}) }));
        count += page.KeyCount ?? 0;
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      return count;
    }
    return (await readdir(join(this.members[0].storageDir, "mirrors", ORIGIN_PREFIX, SEEDED, "_layers", "sha256")).catch(() => [])).length;
  }

  /** Waits (at most 20 s) until the collection has begun evicting the seeded blobs; false if it never did. */
  private async collectionStarted(): Promise<boolean> {
    for (const deadline = Date.now() + 20_000; Date.now() < deadline; await sleep(this.bucket ? 100 : 5)) {
      const left = await this.seededLeft();
      if (left < this.seededBlobs) return left > 0;
    }
    return false;
  }
}

function assertConsistent(audit: StoreAudit, when: string): void {
  if (audit.problems.length > 0) throw new Error(`store inconsistent ${when}:\n${audit.problems.slice(0, 20).join("\n")}`);
}

function expectStatus(answer: HttpAnswer, status: number, what: string): void {
  if (answer.status !== status) throw new Error(`${what}: ${answer.status} (expected ${status}) ${answer.body.toString("utf8").slice(0, 300)}`);
}

function sample<T>(items: T[], count: number): T[] {
  const picked: T[] = [];
  for (let i = 0; i < Math.min(count, items.length); i++) picked.push(items[randomInt(items.length)]);
  return picked;
}
