import { Counter, Gauge, type Registry } from "prom-client";

/** What the S3 driver tells its metrics, read at each scrape. */
export interface S3MetricSources {
  /** Requests sent to S3 so far, by operation (PutObject, UploadPart, GetObject, ...). */
  requests(): ReadonlyMap<string, number>;
  sentBytes(): number;
  copiedBytes(): number;
  spoolBytes(): number;
  /** Whether S3's last answer was a failure. */
  failing(): boolean;
  /** As of the last content collection: abandoned multipart uploads left, and their bytes; and every abort so far. */
  multipart(): { left: number; leftBytes: number; abortedTotal: number } | undefined;
}

/** Registers the S3 driver's metrics (`berth_s3_*`) in berth's registry. */
export function registerS3Metrics(registry: Registry, sources: S3MetricSources): void {
  new Counter({
    name: "berth_s3_requests_total",
    help: "Requests berth sent to S3, by operation.",
    labelNames: ["operation"] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [operation, count] of sources.requests()) this.inc({ operation }, count);
    },
  });
  const counter = (name: string, help: string, value: () => number) =>
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(value());
      },
    });
  const gauge = (name: string, help: string, value: () => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(value());
      },
    });
  counter("berth_s3_sent_bytes_total", "Body bytes berth sent to S3 (PutObject, UploadPart).", sources.sentBytes);
  counter("berth_s3_copied_bytes_total", "Bytes S3 copied on its side for berth (CopyObject, UploadPartCopy).", sources.copiedBytes);
  counter("berth_s3_multipart_uploads_aborted_total", "Abandoned multipart uploads content collection aborted (each checked gone).", () => sources.multipart()?.abortedTotal ?? 0);
  gauge("berth_s3_abandoned_multipart_uploads", "Multipart uploads no write or upload session owns, left after the last content collection (younger than storage.s3.abandonedUploadAge, or whose abort did not take).", () => sources.multipart()?.left ?? 0);
  gauge("berth_s3_abandoned_multipart_upload_bytes", "Bytes held by the parts of those multipart uploads.", () => sources.multipart()?.leftBytes ?? 0);
  gauge("berth_s3_spool_bytes", "Bytes in the local spool: blobs being written to S3.", sources.spoolBytes);
  gauge("berth_s3_up", "1 while S3's last answer was a success, 0 once a request failed every attempt.", () => (sources.failing() ? 0 : 1));
}
