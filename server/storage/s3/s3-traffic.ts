/** What berth asked of S3: requests by operation (readiness probes as Probe), bytes sent, bytes S3 copied on its side. */
export class S3Traffic {
  readonly requests = new Map<string, number>();
  /** Body bytes of PutObject and UploadPart requests. */
  sentBytes = 0;
  /** Bytes S3 copied server-side (CopyObject, UploadPartCopy). */
  copiedBytes = 0;

  request(command: string, request: { headers?: Record<string, string> }): void {
    const operation = command.replace(/Command$/, "");
    this.requests.set(operation, (this.requests.get(operation) ?? 0) + 1);
    if (operation === "PutObject" || operation === "UploadPart" || operation === "Probe") this.sentBytes += Number(request.headers?.["content-length"] ?? 0);
  }

  copied(bytes: number): void {
    this.copiedBytes += bytes;
  }

}
