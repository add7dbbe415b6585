/** The samples of a Prometheus text exposition, keyed `name{a="x",b="y"}` with labels sorted by name. */
export type Samples = ReadonlyMap<string, number>;

export function parseExposition(text: string): Samples {
  const samples = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/.exec(line);
    if (!match) throw new Error(`not an exposition sample line: ${line}`);
    const [, name, labelText, value] = match;
    samples.set(sampleKey(name, parseLabels(labelText ?? "")), Number(value));
  }
  return samples;
}

/** A sample's value; undefined when the exposition has no such sample. */
export function sample(samples: Samples, name: string, labels: Record<string, string> = {}): number | undefined {
  return samples.get(sampleKey(name, labels));
}

/** Every sample of one metric name, with its labels. */
export function samplesOf(samples: Samples, name: string): { labels: Record<string, string>; value: number }[] {
  const found: { labels: Record<string, string>; value: number }[] = [];
  for (const [key, value] of samples) {
    const brace = key.indexOf("{");
    if ((brace === -1 ? key : key.slice(0, brace)) !== name) continue;
    found.push({ labels: brace === -1 ? {} : parseLabels(key.slice(brace + 1, -1)), value });
  }
  return found;
}

function sampleKey(name: string, labels: Record<string, string>): string {
  const names = Object.keys(labels).sort();
  if (names.length === 0) return name;
  return `${name}{${names.map((n) => `${n}=${JSON.stringify(labels[n])}`).join(",")}}`;
}

function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  const pattern = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?/y;
  let position = 0;
  while (position < text.length) {
    pattern.lastIndex = position;
    const match = pattern.exec(text);
    if (!match) throw new Error(`unparsable labels: {${text}}`);
    labels[match[1]] = match[2].replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
    position = pattern.lastIndex;
  }
  return labels;
}
