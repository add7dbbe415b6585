import type { S3Driver } from "./s3-driver.js";

/** What one pass over the bucket's unfinished multipart uploads found and did. */
export interface MultipartReport {
  /** Unfinished multipart uploads under the prefix. */
  found: number;
  /** Of those, the ones no write or upload session of this berth owns. */
  abandoned: number;
  /** Bytes their parts hold. */
  abandonedBytes: number;
  /** Abandoned uploads older than the threshold, aborted (and checked gone). */
  aborted: number;
  /** Abandoned uploads left: younger than the threshold, or whose abort did not take. */
  left: number;
  leftBytes: number;
}

const SESSION_DATA = /^uploads\/([a-f0-9-]{36})\/data(-[0-9a-f]{16})?$/;
/** How far S3's clock may run ahead of berth's: Swift stamps a new upload up to a second ahead of it. */
const CLOCK_SKEW_MS = 2000;

/**
 * Aborts multipart uploads nobody will complete: a crash or a lost connection leaves them,
 * S3 bills their parts, and stores without lifecycle rules (Swift) never drop them. An upload
 * is owned while this process writes it, or while the upload session it belongs to exists;
 * the rest are aborted once older than `maxAgeMs`, and the abort is checked.
 */
export class MultipartCollector {
  /** The last pass, for metrics. */
  last?: MultipartReport;
  /** Uploads aborted by every pass so far. */
  abortedTotal = 0;

  constructor(
    private readonly driver: S3Driver,
    private readonly maxAgeMs: number,
  ) {}

  async run(): Promise<MultipartReport> {
    const report: MultipartReport = { found: 0, abandoned: 0, abandonedBytes: 0, aborted: 0, left: 0, leftBytes: 0 };
    const { bucket, live } = this.driver;
    const now = Date.now();
    for await (const upload of bucket.multipartUploads()) {
      report.found++;
      if (live.has(upload.uploadId)) continue;
      const session = SESSION_DATA.exec(upload.path)?.[1];
      if (session && (await this.sessionExists(session))) continue;
      const bytes = await bucket.partBytes(upload.path, upload.uploadId);
      if (bytes === undefined || live.has(upload.uploadId)) continue; // finished meanwhile
      report.abandoned++;
      report.abandonedBytes += bytes;
      if (now - upload.initiated.getTime() + CLOCK_SKEW_MS >= this.maxAgeMs && (await bucket.abortMultipart(upload.path, upload.uploadId))) {
        report.aborted++;
      } else {
        report.left++;
        report.leftBytes += bytes;
      }
    }
    this.last = report;
    this.abortedTotal += report.aborted;
    return report;
  }

  /** Asked of the bucket unless this process knows the session: another replica may have started it. */
  private async sessionExists(id: string): Promise<boolean> {
    const path = `uploads/${id}/info`;
    return typeof this.driver.index.lookup(path) === "object" || (await this.driver.bucket.head(path)) !== undefined;
  }
}
