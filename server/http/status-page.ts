import express from "express";
import { formatBytes } from "../human-readable.js";
import type { StatusSnapshot, UpstreamStatus } from "../metrics/berth-metrics.js";
import type { CoordinationStatus } from "../metrics/coordination-metrics.js";
import { isLoopback } from "./admin-routes.js";

export interface StatusPageOptions {
  status: () => StatusSnapshot;
  /** Answer loopback clients only (`kubectl port-forward` arrives on loopback): the page names repositories. */
  loopbackOnly: boolean;
}

/** `/ui`: a server-rendered page of what berth is doing, for people. */
export function createStatusPage(options: StatusPageOptions): express.Router {
  const router = express.Router();
  router.get("/ui", (req, res) => {
    res.setHeader("Cache-Control", "no-store");
    if (options.loopbackOnly && !isLoopback(req.socket.remoteAddress)) {
      res.status(403).type("text/plain").send("berth's status page answers loopback clients only in auth mode token: use kubectl port-forward\n");
      return;
    }
    res.setHeader("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'");
    res.status(200).type("text/html; charset=utf-8").send(renderStatusPage(options.status()));
  });
  return router;
}

export function renderStatusPage(status: StatusSnapshot): string {
  const collection = status.lastCollection;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>berth status</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1d2433; background: #fff; }
h1 { font-size: 1.4em; margin: 0 0 .2em; }
h2 { font-size: 1.1em; margin: 1.6em 0 .4em; }
table { border-collapse: collapse; }
th, td { text-align: left; padding: .25em .8em .25em 0; border-bottom: 1px solid #dde; vertical-align: top; }
td.number, th.number { text-align: right; }
code { font-size: .9em; }
.taken { color: #667; }
.health-ok { color: #176b2c; } .health-failing, .health-backing-off { color: #a3121f; font-weight: bold; } .health-idle { color: #667; }
dl { display: grid; grid-template-columns: max-content auto; gap: .2em 1em; margin: 0; }
dt { color: #667; } dd { margin: 0; }
</style>
</head>
<body>
<h1>berth</h1>
<p class="taken">Status at ${escapeHtml(status.takenAt.toISOString())}</p>

${status.coordination ? coordinationSection(status.coordination, status.takenAt) : ""}
<section id="cache">
<h2>Cache</h2>
<dl>
<dt>Hit ratio</dt><dd id="hit-ratio">${escapeHtml(hitRatio(status.hits, status.misses))}</dd>
<dt>Hits / misses</dt><dd>${status.hits} / ${status.misses}</dd>
<dt>Mirrored content</dt><dd id="cache-size">${collection ? escapeHtml(formatBytes(collection.report.cacheBytes)) : "not measured yet (no content collection since start)"}</dd>
<dt>Hosted content</dt><dd>${collection ? escapeHtml(formatBytes(collection.report.hostedBytes)) : "not measured yet"}</dd>
</dl>
</section>

<section id="upstreams">
<h2>Upstreams</h2>
${
  status.upstreams.length === 0
    ? "<p>No upstreams configured.</p>"
    : table(
        ["Upstream", "URL", "Health", "Backing off", "Requests", "Last answer", "Hit ratio", "Received"],
        status.upstreams.map((u) => [
          `<code>${escapeHtml(u.host)}</code>`,
          `<code>${escapeHtml(u.url)}</code>`,
          `<span class="health-${u.health.replace(" ", "-")}">${escapeHtml(u.health)}</span>`,
          backingOff(u),
          number(u.requests),
          lastAnswer(u, status.takenAt),
          escapeHtml(hitRatio(u.hits, u.misses)),
          escapeHtml(formatBytes(u.receivedBytes)),
        ]),
        [4, 7],
      )
}
</section>

<section id="transfers">
<h2>Transfers in flight</h2>
${
  status.transfers.length === 0
    ? "<p>None.</p>"
    : table(
        ["Blob", "Received", "Size", "Progress"],
        status.transfers.map((t) => [
          `<code>${escapeHtml(t.digest)}</code>`,
          escapeHtml(formatBytes(t.written)),
          t.size === undefined ? "unknown" : escapeHtml(formatBytes(t.size)),
          t.size ? `${Math.floor((t.written / t.size) * 100)}%` : "",
        ]),
        [1, 2, 3],
      )
}
</section>

<section id="repositories">
<h2>Busiest repositories</h2>
${
  status.topRepositories.length === 0
    ? "<p>No requests yet.</p>"
    : table(
        ["Repository", "Requests"],
        status.topRepositories.map((r) => [`<code>${escapeHtml(r.repository)}</code>`, number(r.requests)]),
        [1],
      )
}
</section>

<section id="collection">
<h2>Last content collection</h2>
${
  collection
    ? `<dl>
<dt>Finished</dt><dd>${escapeHtml(collection.at.toISOString())}</dd>
<dt>Hosted content</dt><dd>${escapeHtml(formatBytes(collection.report.hostedBytes))}</dd>
<dt>Mirrored content</dt><dd>${escapeHtml(formatBytes(collection.report.cacheBytes))}</dd>
<dt>Unreferenced blobs deleted</dt><dd>${number(collection.report.deletedUnreferenced)}</dd>
<dt>Blobs evicted</dt><dd>${number(collection.report.evicted)}</dd>
<dt>Freed</dt><dd>${escapeHtml(formatBytes(collection.report.freedBytes))}</dd>
</dl>`
    : "<p>None since berth started.</p>"
}
</section>
</body>
</html>
`;
}

function coordinationSection(coordination: CoordinationStatus, now: Date): string {
  const since = `since ${coordination.since.toISOString()} (${Math.max(0, Math.round((now.getTime() - coordination.since.getTime()) / 1000))} s)`;
  const fallbacks = [...coordination.fallbacks].map(([feature, count]) => `${feature} ${count}`).join(", ");
  return `<section id="coordination">
<h2>Replicas</h2>
<dl>
<dt>This replica</dt><dd><code>${escapeHtml(coordination.replicaId)}</code></dd>
<dt>Coordination</dt><dd id="coordination-state">${
    coordination.up
      ? `<span class="health-ok">coordinating through Redis</span> ${escapeHtml(since)}`
      : `<span class="health-failing">Redis unreachable: serving on this replica alone</span> ${escapeHtml(since)}; uploads, pulls and pushes go on, each replica fetches and backs off on its own and reads tags from S3, and it recovers by itself`
  }</dd>
<dt>Run alone since start</dt><dd>${fallbacks === "" ? "nothing" : escapeHtml(fallbacks)}</dd>
</dl>
</section>
`;
}

/** Cells are HTML already escaped by the caller; `numeric` columns align right. */
function table(headings: string[], rows: string[][], numeric: number[]): string {
  const cell = (tag: "th" | "td", i: number, html: string) => `<${tag}${numeric.includes(i) ? ' class="number"' : ""}>${html}</${tag}>`;
  return `<table>
<thead><tr>${headings.map((h, i) => cell("th", i, escapeHtml(h))).join("")}</tr></thead>
<tbody>
${rows.map((row) => `<tr>${row.map((html, i) => cell("td", i, html)).join("")}</tr>`).join("\n")}
</tbody>
</table>`;
}

function backingOff(upstream: UpstreamStatus): string {
  if (upstream.backingOff.length === 0) return "";
  return upstream.backingOff.map((b) => `<code>${escapeHtml(b.repository)}</code> retry in ${Math.ceil(b.remainingMs / 1000)} s`).join("<br>");
}

function lastAnswer(upstream: UpstreamStatus, now: Date): string {
  if (upstream.lastStatus === undefined || !upstream.lastAnswerAt) return "";
  const status = upstream.lastStatus === 0 ? "no answer" : String(upstream.lastStatus);
  return `${escapeHtml(status)}, ${Math.max(0, Math.round((now.getTime() - upstream.lastAnswerAt.getTime()) / 1000))} s ago`;
}

function hitRatio(hits: number, misses: number): string {
  const lookups = hits + misses;
  return lookups === 0 ? "no lookups yet" : `${((hits / lookups) * 100).toFixed(1)}%`;
}

function number(value: number): string {
  return String(Math.trunc(value));
}

const ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]);
}
