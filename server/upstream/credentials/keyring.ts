import { stat } from "node:fs/promises";
import type { CredentialLookup } from "../upstream-client.js";
import { distinctCredentials, type Credential } from "./credential.js";
import { CredentialFileError, readCredentialFile, type CredentialFile } from "./credential-file.js";
import { getFromCredentialHelper, type CredentialHelperError } from "./credential-helper.js";
import { keyMatchesImage } from "./registry-key.js";

export type KeyringProblem = CredentialFileError | CredentialHelperError;

export interface KeyringOptions {
  /** Longest a `docker-credential-*` helper may take to answer. Default 10 s. */
  helperTimeoutMs?: number;
  /** How long a helper's answer (a credential, none, or a failure) is reused. Default 60 s. */
  helperCacheMs?: number;
  /** Told once about each problem with a file or helper; lookups carry on without that source. */
  onProblem?: (problem: KeyringProblem) => void;
}

/** kubelet's defaultRegistryHost: the key `docker login` writes (`https://index.docker.io/v1/`), normalised. */
const DOCKER_HUB_KEY = "index.docker.io";
/** The server URL docker (and its helpers) use for Docker Hub. */
const DOCKER_HUB_SERVER_URL = "https://index.docker.io/v1/";

type Candidate = { credential: Credential } | { helper: string; source: string };

/** Every key of every file, most specific first, as kubelet's BasicDockerKeyring indexes them. */
interface KeyIndex {
  keys: string[];
  candidates: Map<string, Candidate[]>;
  /** `credsStore` helpers: asked about any registry, after all keyed matches. */
  stores: Candidate[];
}

interface FileState {
  /** Identity of the content last examined (inode, size, mtime), or why it could not be read. */
  version: string;
  /** The last content that parsed; kept while a later edit is malformed, dropped when the file goes away. */
  file?: CredentialFile;
}

/**
 * Finds upstream credentials the way kubelet v1.26+ does for docker config files and pull
 * Secrets (`BasicDockerKeyring.Lookup`): every key whose host labels, port and path prefix
 * match the image, most specific key first, each credential once; for a Docker Hub image,
 * the `index.docker.io` key only when no key matched. Files are re-read when they change
 * (checked at each lookup). Beyond kubelet: `credHelpers`/`credsStore` helpers are run.
 */
export class Keyring implements CredentialLookup {
  private readonly helperTimeoutMs: number;
  private readonly helperCacheMs: number;
  private readonly onProblem: (problem: KeyringProblem) => void;
  private readonly states = new Map<string, FileState>();
  private readonly helperAnswers = new Map<string, { expires: number; answer: Promise<Credential | undefined> }>();
  private index: KeyIndex = { keys: [], candidates: new Map(), stores: [] };
  private refreshing: Promise<CredentialFileError[]> | undefined;

  constructor(
    readonly files: readonly string[],
    options: KeyringOptions = {},
  ) {
    this.helperTimeoutMs = options.helperTimeoutMs ?? 10_000;
    this.helperCacheMs = options.helperCacheMs ?? 60_000;
    this.onProblem = options.onProblem ?? (() => {});
  }

  /** Reads every file now; throws the first that cannot be read or parsed (for start-up checks). */
  async load(): Promise<void> {
    this.states.forEach((state) => (state.version = ""));
    const problems = await this.refresh();
    const fatal = problems.find((p) => p.code !== "CREDENTIAL_KEY_IGNORED");
    problems.filter((p) => p !== fatal).forEach((p) => this.onProblem(p));
    if (fatal) throw fatal;
  }

  /** Credentials for `host[:port]/repository` (no tag or digest), in the order to try them. */
  async lookup(image: string): Promise<Credential[]> {
    (await this.refresh()).forEach((p) => this.onProblem(p));
    const { keys, candidates, stores } = this.index;
    const matched = new Set<Candidate>();
    for (const key of keys) {
      if (keyMatchesImage(key, image)) candidates.get(key)?.forEach((c) => matched.add(c));
    }
    const dockerHub = isDockerHubImage(image);
    if (matched.size === 0 && dockerHub) candidates.get(DOCKER_HUB_KEY)?.forEach((c) => matched.add(c));
    stores.forEach((c) => matched.add(c));
    const serverUrl = dockerHub ? DOCKER_HUB_SERVER_URL : image.split("/", 1)[0];
    const resolved = await Promise.all([...matched].map((c) => ("credential" in c ? c.credential : this.askHelper(c.helper, serverUrl, c.source))));
    return distinctCredentials(resolved.filter((c): c is Credential => c !== undefined));
  }

  private refresh(): Promise<CredentialFileError[]> {
    this.refreshing ??= this.refreshFiles().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  private async refreshFiles(): Promise<CredentialFileError[]> {
    const outcomes = await Promise.all(this.files.map((path) => this.refreshFile(path)));
    if (outcomes.some((o) => o.changed)) this.index = buildIndex(this.files.map((path) => this.states.get(path)?.file));
    return outcomes.flatMap((o) => o.problems);
  }

  private async refreshFile(path: string): Promise<{ changed: boolean; problems: CredentialFileError[] }> {
    const state = this.states.get(path) ?? { version: "" };
    this.states.set(path, state);
    let version: string;
    try {
      const info = await stat(path, { bigint: true });
      version = `${info.ino}:${info.size}:${info.mtimeNs}`;
    } catch (err) {
      version = `unreadable:${(err as NodeJS.ErrnoException).code ?? "error"}`;
    }
    if (version === state.version) return { changed: false, problems: [] };
    state.version = version;
    try {
      state.file = await readCredentialFile(path);
    } catch (err) {
      if (!(err instanceof CredentialFileError)) throw err;
      if (err.code === "CREDENTIAL_FILE_UNREADABLE") state.file = undefined;
      return { changed: true, problems: [err] };
    }
    const ignored = state.file.ignored.map(
      (source) => new CredentialFileError("CREDENTIAL_KEY_IGNORED", path, `${source}: not a registry URL kubelet can parse; ignored`),
    );
    return { changed: true, problems: ignored };
  }

  private askHelper(helper: string, serverUrl: string, source: string): Promise<Credential | undefined> {
    const cacheKey = `${source}\n${serverUrl}`;
    const now = Date.now();
    const cached = this.helperAnswers.get(cacheKey);
    if (cached && cached.expires > now) return cached.answer;
    for (const [key, entry] of this.helperAnswers) if (entry.expires <= now) this.helperAnswers.delete(key);
    const entry = {
      expires: Number.POSITIVE_INFINITY,
      answer: getFromCredentialHelper({ helper, serverUrl, source, timeoutMs: this.helperTimeoutMs })
        .catch((err: CredentialHelperError) => {
          this.onProblem(err);
          return undefined;
        })
        .finally(() => (entry.expires = Date.now() + this.helperCacheMs)),
    };
    this.helperAnswers.set(cacheKey, entry);
    return entry.answer;
  }
}

/**
 * kubelet's isDefaultRegistryMatch: Docker Hub serves the image when its first component is
 * `docker.io` or `index.docker.io`, or names no host (no `.` or `:`), or there is only one.
 */
export function isDockerHubImage(image: string): boolean {
  const slash = image.indexOf("/");
  if (slash < 0) return image !== "";
  const first = image.slice(0, slash);
  if (first === "") return false;
  return first === "docker.io" || first === "index.docker.io" || !/[.:]/.test(first);
}

function buildIndex(files: readonly (CredentialFile | undefined)[]): KeyIndex {
  const candidates = new Map<string, Candidate[]>();
  const add = (key: string, candidate: Candidate) => candidates.set(key, [...(candidates.get(key) ?? []), candidate]);
  const stores: Candidate[] = [];
  for (const file of files) {
    if (!file) continue;
    // docker prefers a registry's credHelpers entry to its auths entry.
    file.helpers.forEach(({ key, helper, source }) => add(key, { helper, source }));
    file.credentials.forEach(({ key, credential }) => add(key, { credential }));
    if (file.store) stores.push(file.store);
  }
  // kubelet sorts keys in reverse (byte-wise) order, so `quay.io/org` comes before `quay.io`.
  const keys = [...candidates.keys()].sort((a, b) => Buffer.compare(Buffer.from(b), Buffer.from(a)));
  return { keys, candidates, stores };
}
